//! Bytes of the held spans, appended in arrival order to large chunks instead of one heap
//! allocation per span.
//!
//! Why chunks: a held span used to be one exactly sized allocation, so a window of 100 000
//! spans meant 100 000 live allocations of ~0.7 KB, freed in a different order than they were
//! made and from another thread than the decoder's; malloc kept about a third more RSS than
//! the bytes themselves, and the allocation and free were a large part of the tail path's CPU.
//! Spans are freed in nearly the order they arrived (a trace is decided `decision_wait` after
//! its first span, and every span it holds arrived after that), so a chunk is empty about one
//! window after it was filled: it then goes back to a small pool and is refilled. Memory is
//! the bytes held plus about one chunk; no allocation per span.
use std::collections::VecDeque;

/// Size of a chunk (a span larger than this gets a chunk of its own size).
const CHUNK: usize = 256 * 1024;
/// Empty chunks kept for reuse (beyond these they are freed).
const SPARE: usize = 4;

/// Where one span's bytes are.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Sequence number of the chunk.
    chunk: u64,
    /// Offset in the chunk.
    at: u32,
    /// Length.
    len: u32,
}

#[derive(Debug)]
struct Chunk {
    /// The bytes, never grown past the capacity they were allocated with.
    bytes: Vec<u8>,
    /// Slots of this chunk not yet released.
    live: usize,
}

/// Chunks in sequence order; the last one is being filled.
#[derive(Debug, Default)]
pub struct Arena {
    /// Live chunks; `chunks[i]` has sequence number `first + i`.
    chunks: VecDeque<Chunk>,
    /// Sequence number of `chunks[0]`.
    first: u64,
    /// Emptied chunks kept for reuse.
    spare: Vec<Vec<u8>>,
}

impl Arena {
    /// Stores what `write` appends (exactly `len` bytes) and returns where it is.
    pub fn put(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Slot {
        let fits = self
            .chunks
            .back()
            .is_some_and(|c| c.bytes.capacity() - c.bytes.len() >= len);
        if !fits {
            let bytes = match self.spare.pop() {
                Some(b) if len <= b.capacity() => b,
                _ => Vec::with_capacity(len.max(CHUNK)),
            };
            self.chunks.push_back(Chunk { bytes, live: 0 });
        }
        let chunk = self.first + self.chunks.len() as u64 - 1;
        let c = self.chunks.back_mut().expect("a chunk was just ensured");
        let at = c.bytes.len();
        write(&mut c.bytes);
        c.live += 1;
        Slot {
            chunk,
            at: at as u32,
            len: (c.bytes.len() - at) as u32,
        }
    }

    /// The bytes of a slot not yet released.
    pub fn get(&self, s: Slot) -> &[u8] {
        let c = &self.chunks[(s.chunk - self.first) as usize];
        &c.bytes[s.at as usize..(s.at + s.len) as usize]
    }

    /// Releases a slot; the chunks at the front that hold nothing any more are recycled.
    pub fn release(&mut self, s: Slot) {
        let c = &mut self.chunks[(s.chunk - self.first) as usize];
        c.live -= 1;
        // The last chunk is the one being filled: it stays even when empty.
        while self.chunks.len() > 1 && self.chunks.front().is_some_and(|c| c.live == 0) {
            if let Some(mut c) = self.chunks.pop_front() {
                self.first += 1;
                if self.spare.len() < SPARE && c.bytes.capacity() == CHUNK {
                    c.bytes.clear();
                    self.spare.push(c.bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(a: &mut Arena, v: &[u8]) -> Slot {
        a.put(v.len(), |b| b.extend_from_slice(v))
    }

    #[test]
    fn slots_read_back_and_chunks_are_recycled_in_order() {
        let mut a = Arena::default();
        let span = vec![7u8; 1000];
        let slots: Vec<Slot> = (0..1000).map(|_| put(&mut a, &span)).collect();
        assert!(a.chunks.len() >= 4, "{} chunks", a.chunks.len());
        for s in &slots {
            assert_eq!(a.get(*s), &span[..]);
        }
        // Releasing out of order frees nothing until the front chunk is empty.
        a.release(slots[999]);
        assert_eq!(a.first, 0);
        for s in &slots[..999] {
            a.release(*s);
        }
        assert_eq!(a.chunks.len(), 1);
        assert!(a.spare.len() <= SPARE);
        // Refilling uses spare chunks first; a span above the chunk size gets its own.
        let big = vec![1u8; CHUNK + 10];
        let s = put(&mut a, &big);
        assert_eq!(a.get(s), &big[..]);
        let t = put(&mut a, b"after");
        assert_eq!(a.get(t), b"after");
        assert_eq!(a.get(s), &big[..]);
    }
}

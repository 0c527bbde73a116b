//! The few pieces of Apache Thrift's binary protocol (TBinaryProtocol) the Jaeger `Batch`
//! needs: structs, lists, i32, i64, double, bool, string/binary.
//!
//! Hand-written on purpose: no well-kept Rust crate fits. The `thrift` crate is the Apache
//! project's generated-code runtime (sync-only transports, codegen needed for the IDL, rarely
//! released), and the Jaeger-specific crates are unmaintained since Jaeger moved to OTLP. The
//! subset here is ~80 lines and is checked against the Python `thrift` library's decoder.
//!
//! Wire format (big-endian throughout): a struct is a sequence of fields, each
//! `type:i8 id:i16 value`, closed by a stop byte 0; a list is `elem_type:i8 size:i32` then the
//! elements; strings and binary are `len:i32` then the bytes; bool is one byte. Only messages
//! carry the strict version header, and the Jaeger HTTP endpoint takes a bare struct.

/// Thrift type ids used on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TType {
    /// Stop marker closing a struct.
    Stop = 0,
    /// One byte, 0 or 1.
    Bool = 2,
    /// IEEE 754 double.
    Double = 4,
    /// 32-bit signed integer (also enums).
    I32 = 8,
    /// 64-bit signed integer.
    I64 = 10,
    /// Length-prefixed bytes (UTF-8 text or binary).
    String = 11,
    /// Nested struct.
    Struct = 12,
    /// Homogeneous list.
    List = 15,
}

/// A value that knows how to write itself as a Thrift struct.
pub trait ThriftStruct {
    /// Appends the struct's fields and the stop byte.
    fn write(&self, w: &mut Writer);
}

/// Appends binary-protocol encodings to a buffer.
#[derive(Default, Debug)]
pub struct Writer {
    /// The encoded bytes so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// A field header: type and id.
    pub fn field(&mut self, ty: TType, id: i16) -> &mut Self {
        self.buf.push(ty as u8);
        self.buf.extend_from_slice(&id.to_be_bytes());
        self
    }

    /// Closes a struct.
    pub fn stop(&mut self) {
        self.buf.push(TType::Stop as u8);
    }

    /// A bool value.
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// An i32 value.
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// An i64 value.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A double value.
    pub fn double(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    /// A string or binary value. Thrift sizes are i32: longer values are cut (never happens for
    /// spans that passed the shim's body limit, but the encoder must not produce a corrupt frame).
    pub fn bytes(&mut self, v: &[u8]) {
        let v = &v[..v.len().min(i32::MAX as usize)];
        self.i32(v.len() as i32);
        self.buf.extend_from_slice(v);
    }

    /// A list of structs as one field.
    pub fn struct_list<T: ThriftStruct>(&mut self, id: i16, items: &[T]) {
        self.field(TType::List, id);
        self.buf.push(TType::Struct as u8);
        self.i32(items.len().min(i32::MAX as usize) as i32);
        for item in items {
            item.write(self);
        }
    }

    /// A struct as one field.
    pub fn struct_field<T: ThriftStruct>(&mut self, id: i16, v: &T) {
        self.field(TType::Struct, id);
        v.write(self);
    }
}

/// Encodes a bare struct (no message envelope).
pub fn encode<T: ThriftStruct>(v: &T) -> Vec<u8> {
    let mut w = Writer::default();
    v.write(&mut w);
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair(i32, &'static str);
    impl ThriftStruct for Pair {
        fn write(&self, w: &mut Writer) {
            w.field(TType::I32, 1).i32(self.0);
            w.field(TType::String, 2).bytes(self.1.as_bytes());
            w.stop();
        }
    }

    #[test]
    fn struct_and_list_layout() {
        assert_eq!(
            encode(&Pair(-2, "ab")),
            [8, 0, 1, 0xff, 0xff, 0xff, 0xfe, 11, 0, 2, 0, 0, 0, 2, b'a', b'b', 0]
        );
        struct Outer;
        impl ThriftStruct for Outer {
            fn write(&self, w: &mut Writer) {
                w.struct_list(3, &[Pair(1, "")]);
                w.field(TType::Double, 4).double(1.0);
                w.field(TType::Bool, 5).bool(true);
                w.stop();
            }
        }
        let got = encode(&Outer);
        assert_eq!(&got[..8], &[15, 0, 3, 12, 0, 0, 0, 1]);
        assert_eq!(
            &got[got.len() - 16..],
            &[4, 0, 4, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 2, 0, 5, 1, 0]
        );
    }
}

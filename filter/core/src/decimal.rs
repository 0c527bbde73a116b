//! Decimal text to `f64`, correctly rounded (round half to even): the value `str::parse::<f64>`
//! returns, bit for bit, for every JSON number.
//!
//! Why not `str::parse`: the standard library's decimal parser (`core::num::dec2flt`: Eisel-Lemire
//! with its table of 128-bit powers of five, plus a big-decimal fallback) is 19 KB of the Wasm
//! module (measured), whose budget is 300 KB, for one fractional configuration value
//! (`sample_ratio`). This reader is a fraction of that: no tables, a few loops over a small
//! big integer. It is slow by comparison (microseconds), which does not matter: it runs when a
//! configuration is read, never on the request path.
//!
//! # Algorithm
//! The text is `D × 10^e` with `D` an integer of its significant digits. Two paths:
//! - Fast (Clinger): `D ≤ 2^53` and `|e| ≤ 22`. `D` and `10^|e|` are then both exact `f64`s, and
//!   one IEEE multiplication or division rounds their exact product or quotient correctly.
//! - Exact, for everything else: the value is `N / M × 2^e`, the ratio of two big integers
//!   (`N = D × 5^e`, `M = 1` for `e ≥ 0`; `N = D`, `M = 5^-e` otherwise). Scaled by `2^s`, with
//!   `s` chosen from the bit lengths, the quotient `q = ⌊N/M × 2^(s+e)⌋` has 54 or 55 bits: 53
//!   for the significand, one rounding bit and, if 55, one more that joins the sticky bit (any
//!   nonzero remainder). `q` comes from binary long division, 55 compare-and-subtract steps:
//!   slower than estimating it from the top limbs, but that needed 128-bit division, 2.2 KB
//!   more in the module (measured). A value below the normal range uses `s = 1075` at most,
//!   so the quotient keeps only the bits a subnormal has; a rounding carry moves into the
//!   exponent field by plain addition, and anything at or above the infinity pattern is
//!   infinity, as `str::parse` gives.
//!
//! Bounds: at most [`MAX_DIGITS`] significant digits are kept. Further digits only matter
//! through whether one of them is nonzero (a midpoint between two adjacent `f64`s, or the
//! overflow threshold, has at most 768 significant digits, so it cannot fall strictly between
//! the kept digits and the kept digits plus one unit of the last kept place); a nonzero dropped
//! digit is kept as one appended digit `1`, which lies strictly inside that same interval.
//! Values of `10^309` or more are infinite and values below `10^-324` are zero (half the
//! smallest subnormal is `2.47e-324`) before any big arithmetic, which bounds the integers to
//! about 2 700 bits. The exponent's digits saturate (at 2^58, far beyond any text's digit count),
//! so `1e99999999999999999999` is infinite and never overflows an integer.
//!
//! The big-integer helpers are kept out of line (`#[inline(never)]`): the core is built at
//! `opt-level = 3`, which copies and unrolls them at every call otherwise (1.3 KB more in the
//! module, measured).

use core::cmp::Ordering;

/// Significant digits kept exactly (midpoints need at most 768).
pub const MAX_DIGITS: usize = 800;

/// The bits of `f64::INFINITY`; any larger pattern would be a NaN.
const INFINITY_BITS: u64 = 0x7ff0_0000_0000_0000;

/// A JSON number's text (`-`? digits, optional `.` fraction, optional `e`/`E` exponent with an
/// optional sign) as the nearest `f64`, ties to even; `None` if the text is not such a number.
/// Digits on either side of the `.` may be absent, one digit at least is required, leading zeros
/// are allowed: every text accepted here is accepted by `str::parse::<f64>` with the same value.
pub fn parse(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let neg = b.first() == Some(&b'-');
    let mut digits = Vec::new(); // D, little-endian u32 limbs
    let (mut kept, mut exp, mut seen, mut in_fraction, mut sticky) =
        (0usize, 0i64, false, false, false);
    let mut i = usize::from(neg);
    while let Some(&c) = b.get(i) {
        i += 1;
        match c {
            b'0'..=b'9' => {
                seen = true;
                if in_fraction {
                    exp -= 1;
                }
                if kept == 0 && c == b'0' {
                    // A leading zero is not significant.
                } else if kept < MAX_DIGITS {
                    mul_add(&mut digits, 10, u32::from(c - b'0'));
                    kept += 1;
                } else {
                    exp += 1;
                    sticky |= c != b'0';
                }
            }
            b'.' if !in_fraction => in_fraction = true,
            b'e' | b'E' => {
                let eneg = b.get(i) == Some(&b'-');
                if matches!(b.get(i), Some(b'-' | b'+')) {
                    i += 1;
                }
                let rest = b.get(i..).unwrap_or_default();
                if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                // Saturates (at 2^58, far beyond any text's digit count), never overflows.
                let e = rest.iter().fold(0i64, |e, d| {
                    if e < 1 << 58 {
                        e * 10 + i64::from(d - b'0')
                    } else {
                        e
                    }
                });
                exp = exp.saturating_add(if eneg { -e } else { e });
                break;
            }
            _ => return None,
        }
    }
    if !seen {
        return None;
    }
    if sticky {
        mul_add(&mut digits, 10, 1);
        kept += 1;
        exp = exp.saturating_sub(1);
    }
    let v = f64::from_bits(unsigned_bits(digits, kept as i64, exp));
    Some(if neg { -v } else { v })
}

/// The bits of the `f64` nearest `D × 10^exp`, `D` having `kept` decimal digits (the first
/// nonzero unless `D = 0`).
fn unsigned_bits(mut num: Vec<u32>, kept: i64, exp: i64) -> u64 {
    // 10^(kept-1+exp) ≤ value < 10^(kept+exp).
    let magnitude = kept.saturating_add(exp);
    if num.is_empty() || magnitude < -323 {
        return 0;
    }
    if magnitude > 309 {
        return INFINITY_BITS;
    }
    if num.len() <= 2 && exp.unsigned_abs() <= 22 {
        let d = num.iter().rev().fold(0u64, |d, &l| d << 32 | u64::from(l));
        if d <= 1 << 53 {
            let p = (0..exp.unsigned_abs()).fold(1.0f64, |p, _| p * 10.0); // exact up to 10^22
            let d = d as f64; // exact: at most 2^53
            return if exp < 0 { d / p } else { d * p }.to_bits();
        }
    }
    // value = num/den × 2^exp, the powers of two of 10^exp taken out.
    let mut den = vec![1u32];
    mul_pow5(
        if exp < 0 { &mut den } else { &mut num },
        exp.unsigned_abs(),
    );
    // num/den lies in (2^(bits(num)-bits(den)-1), 2^(bits(num)-bits(den)+1)), so
    // q = ⌊value × 2^s⌋ has 54 or 55 bits (fewer where s is capped, for subnormals).
    let mut s = (54 + bit_len(&den) - bit_len(&num) - exp).min(1075);
    let (up, down) = ((s + exp).max(0), (-s - exp).max(0));
    shl(&mut num, up as u64);
    shl(&mut den, down as u64 + 54);
    let mut q = 0u64;
    for _ in 0..55 {
        q <<= 1;
        if cmp(&num, &den) != Ordering::Less {
            sub(&mut num, &den);
            q |= 1;
        }
        shl(&mut num, 1);
    }
    let mut sticky = !num.is_empty();
    if q >> 54 != 0 {
        sticky |= q & 1 != 0;
        q >>= 1;
        s -= 1;
    }
    // value = (q + remainder) / 2^s: q's last bit is the rounding bit.
    let mut m = q >> 1;
    if q & 1 != 0 && (sticky || m & 1 != 0) {
        m += 1;
    }
    // m / 2^(s-1): a normal m (2^52 ≤ m ≤ 2^53) sets the exponent field to 1076 - s by the
    // addition; a subnormal one (s = 1075, m < 2^52) is the bits themselves.
    let field = (1075 - s).clamp(0, 2047) as u64;
    ((field << 52) + m).min(INFINITY_BITS)
}

/// `x = x·m + a`.
#[inline(never)]
fn mul_add(x: &mut Vec<u32>, m: u32, a: u32) {
    let mut carry = u64::from(a);
    for l in x.iter_mut() {
        let t = u64::from(*l) * u64::from(m) + carry;
        *l = t as u32;
        carry = t >> 32;
    }
    if carry != 0 {
        x.push(carry as u32);
    }
}

/// `x = x·5^k`.
fn mul_pow5(x: &mut Vec<u32>, mut k: u64) {
    while k > 0 {
        let step = k.min(13); // 5^13 < 2^32
        mul_add(x, 5u32.pow(step as u32), 0);
        k -= step;
    }
}

/// `x = x·2^n`.
#[inline(never)]
fn shl(x: &mut Vec<u32>, n: u64) {
    let bits = n % 32;
    let mut carry = 0;
    for l in x.iter_mut() {
        let t = u64::from(*l) << bits | carry;
        *l = t as u32;
        carry = t >> 32;
    }
    if carry != 0 {
        x.push(carry as u32);
    }
    for _ in 0..n / 32 {
        if !x.is_empty() {
            x.insert(0, 0);
        }
    }
}

/// `x = x - y`, for `x ≥ y`.
#[inline(never)]
fn sub(x: &mut Vec<u32>, y: &[u32]) {
    let mut borrow = false;
    for (i, l) in x.iter_mut().enumerate() {
        let (t, b1) = l.overflowing_sub(y.get(i).copied().unwrap_or(0));
        let (t, b2) = t.overflowing_sub(u32::from(borrow));
        *l = t;
        borrow = b1 | b2;
    }
    while x.last() == Some(&0) {
        x.pop();
    }
}

/// Compares two big integers without leading zero limbs.
#[inline(never)]
fn cmp(x: &[u32], y: &[u32]) -> Ordering {
    x.len()
        .cmp(&y.len())
        .then_with(|| x.iter().rev().cmp(y.iter().rev()))
}

/// Significant bits of `x`.
fn bit_len(x: &[u32]) -> i64 {
    x.last()
        .map_or(0, |l| 32 * x.len() as i64 - i64::from(l.leading_zeros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard parser's bits, the reference.
    fn std_bits(t: &str) -> u64 {
        t.parse::<f64>()
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .to_bits()
    }

    fn same_as_std(t: &str) {
        let got = parse(t).unwrap_or_else(|| panic!("{t}: refused"));
        assert!(!got.is_nan(), "{t}: NaN");
        assert_eq!(
            got.to_bits(),
            std_bits(t),
            "{t}: {got:e} vs {}",
            t.parse::<f64>().unwrap()
        );
    }

    /// splitmix64: a fixed sequence, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn digits(&mut self, n: usize) -> String {
            (0..n)
                .map(|_| char::from(b'0' + self.below(10) as u8))
                .collect()
        }
    }

    /// The exact decimal text of `m × 2^p` (every such value has a finite expansion).
    fn exact_decimal(m: u64, p: i32) -> String {
        // Decimal digits, least significant first, of m × 2^p × 10^frac.
        let mut d: Vec<u8> = m.to_string().bytes().rev().map(|c| c - b'0').collect();
        let times = |d: &mut Vec<u8>, k: u8| {
            let mut carry = 0;
            for x in d.iter_mut() {
                let t = *x * k + carry;
                *x = t % 10;
                carry = t / 10;
            }
            if carry > 0 {
                d.push(carry);
            }
        };
        let frac = if p >= 0 {
            (0..p).for_each(|_| times(&mut d, 2));
            0
        } else {
            // m / 2^k = m × 5^k / 10^k
            (0..-p).for_each(|_| times(&mut d, 5));
            (-p) as usize
        };
        while d.len() <= frac {
            d.push(0);
        }
        let s: String = d.iter().rev().map(|&x| char::from(b'0' + x)).collect();
        let (int, fr) = s.split_at(s.len() - frac);
        if fr.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{fr}")
        }
    }

    fn big(v: u128) -> Vec<u32> {
        let mut x: Vec<u32> = (0..4).map(|i| (v >> (32 * i)) as u32).collect();
        while x.last() == Some(&0) {
            x.pop();
        }
        x
    }

    #[test]
    fn big_integer_helpers_agree_with_u128() {
        // A borrow through an equal limb and through zero limbs.
        let mut x = big(5 << 64);
        sub(&mut x, &big(5 << 32 | 1));
        assert_eq!(x, big((5 << 64) - (5 << 32 | 1)));
        let mut x = big(1 << 96);
        sub(&mut x, &big(1));
        assert_eq!(x, big((1 << 96) - 1));
        let mut x = big(7 << 64 | 3);
        sub(&mut x, &big(7 << 64 | 3));
        assert!(x.is_empty(), "zero has no limbs");
        let mut rng = Rng(3);
        for _ in 0..20_000 {
            // Operands with runs of equal and zero limbs, where borrows and carries travel.
            let pick = |rng: &mut Rng| -> u128 {
                (0..3).fold(0, |v, _| {
                    let l = [0, 1, u32::MAX, 5, rng.next() as u32][rng.below(5) as usize];
                    v << 32 | u128::from(l)
                })
            };
            let (a, b) = (pick(&mut rng), pick(&mut rng));
            let (hi, lo) = (a.max(b), a.min(b));
            let mut x = big(hi);
            sub(&mut x, &big(lo));
            assert_eq!(x, big(hi - lo), "{hi} - {lo}");
            assert_eq!(cmp(&big(a), &big(b)), a.cmp(&b), "{a} <> {b}");
            let n = rng.below(32);
            let mut x = big(a);
            shl(&mut x, n);
            assert_eq!(x, big(a << n), "{a} << {n}");
            let m = rng.next() as u32;
            let mut x = big(a);
            mul_add(&mut x, m, 7);
            assert_eq!(x, big(a * u128::from(m) + 7), "{a} * {m} + 7");
            assert_eq!(bit_len(&big(a)), 128 - i64::from(a.leading_zeros()));
        }
    }

    #[test]
    fn hard_cases_match_the_standard_parser() {
        for t in [
            "0",
            "-0",
            "0.0",
            "-0.0e10",
            "0e-400",
            "-0e99999",
            "1",
            "-1",
            "0.1",
            "0.2",
            "0.3",
            "0.5",
            "1e-7",
            "2e-124",
            "2E-124",
            "2e-0124",
            "2e+0000000000000000000000000000000000000010",
            "1e308",
            "1e309",
            "1e400",
            "-1e400",
            "1e-400",
            "-1e-400",
            "1e-323",
            "1e-324",
            "3e-324",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "2.47032822920623272e-324",
            "2.2250738585072011e-308",
            "2.2250738585072012e-308",
            "2.2250738585072014e-308",
            "2.225073858507201136057409796709131975934819546351645648e-308",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "-1.7976931348623159e308",
            "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791.9999999",
            "9007199254740993",
            "9007199254740992.5",
            "9007199254740993.0000000000000000000000000001",
            "9007199254740994",
            "9007199254740995",
            "18014398509481985",
            "123456789012345678901234567890",
            "0.1000000000000000055511151231257827021181583404541015625",
            "0.1000000000000000055511151231257827021181583404541015624",
            "0.1000000000000000055511151231257827021181583404541015626",
            "7.2057594037927933e16",
            "1e22",
            "1e23",
            "1e-22",
            "1e-23",
            "8.98846567431158e307",
            "2.2250738585072011e-308",
            "3.0540870026620195e-308",
            "1448997445238699",
            "5e-324",
            "6e-324",
            "7.4e-324",
            "7.5e-324",
            "0.000000000000000000000000000000000000000000001e300",
            "100000000000000000000000000000000000000000000000000000e-54",
        ] {
            same_as_std(t);
        }
        // Many significant digits: a long expansion, and 800 and more digits around 1.
        same_as_std(&format!(
            "3.{}",
            "14159265358979323846264338327950288".repeat(30)
        ));
        same_as_std(&format!("1.{}1", "0".repeat(798)));
        same_as_std(&format!("1.{}1", "0".repeat(2000)));
        same_as_std(&format!("0.{}e1", "9".repeat(2000)));
        same_as_std(&format!("1{}e-5000", "0".repeat(5000)));
        same_as_std(&format!("0.{}1e5001", "0".repeat(5000)));
        same_as_std(&format!("{}e-4700", "7".repeat(5000)));
        // A digit offset beyond any 16-bit exponent: the exponent is counted exactly.
        same_as_std(&format!("0.{}1e70010", "0".repeat(70_000)));
        same_as_std(&format!("1{}e-70001", "0".repeat(70_000)));
        // Huge exponent digit strings saturate.
        assert_eq!(parse("1e99999999999999999999999999"), Some(f64::INFINITY));
        assert_eq!(
            parse("-1e99999999999999999999999999"),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(parse("1e-99999999999999999999999999"), Some(0.0));
        let neg_zero = parse("-1e-99999999999999999999999999").unwrap();
        assert_eq!(neg_zero.to_bits(), (-0.0f64).to_bits());
        assert_eq!(parse("0e99999999999999999999999999"), Some(0.0));
        same_as_std("1e99999999999999999999999999");
        same_as_std("1e-99999999999999999999999999");
    }

    #[test]
    fn texts_that_are_not_numbers_are_refused() {
        for bad in [
            "", "-", ".", "-.", "e5", ".e5", "1e", "1e+", "1e-", "1.2.3", "0x10", "1,5", "--1",
            "+1", "1e5.0", "1e+-5", "inf", "NaN", "1 ", " 1", "1e5e5", "١",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        // Forms beyond JSON that the standard parser reads alike.
        for t in ["1.", ".5", "-.5e1", "007", "1.e3"] {
            same_as_std(t);
        }
    }

    #[test]
    fn midpoints_between_neighbours_round_to_even_and_a_far_digit_breaks_the_tie() {
        let mut rng = Rng(0x5eed_dec1);
        // Neighbours across the range: subnormals, the normal boundary, around 1, the top.
        let mut xs: Vec<f64> = vec![
            0.0,
            f64::from_bits(1),
            f64::from_bits(2),
            f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::MIN_POSITIVE,
            1.0,
            9007199254740992.0,
            f64::MAX,
        ];
        for _ in 0..300 {
            xs.push(f64::from_bits(rng.below(0x7ff0_0000_0000_0000)));
        }
        for x in xs {
            // x = m × 2^p; the midpoint with its upper neighbour is (2m + 1) × 2^(p-1).
            let bits = x.to_bits();
            let (field, frac) = ((bits >> 52) as i32, bits & ((1 << 52) - 1));
            let (m, p) = if field == 0 {
                (frac, -1074)
            } else {
                (frac | 1 << 52, field - 1075)
            };
            let mid = exact_decimal(2 * m + 1, p - 1);
            same_as_std(&mid);
            // Digits far beyond the kept ones decide a tie: just above, just below.
            let (point, far) = if mid.contains('.') {
                ("", 900)
            } else {
                (".", 900)
            };
            same_as_std(&format!("{mid}{point}{}1", "0".repeat(far)));
            if let Some(stem) = mid.strip_suffix('5').filter(|_| point.is_empty()) {
                same_as_std(&format!("{stem}4{}", "9".repeat(far)));
            }
            // With an exponent: the same value written as digits × 10^-n.
            let digits: String = mid.chars().filter(|c| *c != '.').collect();
            let n = mid.find('.').map_or(0, |i| mid.len() - i - 1);
            same_as_std(&format!("{digits}e-{n}"));
        }
    }

    #[test]
    fn random_decimals_match_the_standard_parser() {
        let mut rng = Rng(42);
        for _ in 0..200_000 {
            let n = 1 + rng.below(40) as usize;
            let digits = rng.digits(n);
            let point = rng.below(n as u64 + 1) as usize;
            let (int, frac) = digits.split_at(point);
            let int = if int.is_empty() { "0" } else { int };
            let sign = if rng.below(4) == 0 { "-" } else { "" };
            let exp = rng.below(661) as i64 - 350;
            let text = match rng.below(4) {
                0 if !frac.is_empty() => format!("{sign}{int}.{frac}e{exp}"),
                1 => format!("{sign}{digits}E{exp:+}"),
                2 => format!(
                    "{sign}{digits}e{}{:03}",
                    if exp < 0 { "-" } else { "" },
                    exp.abs()
                ),
                _ if !frac.is_empty() => format!("{sign}{int}.{frac}"),
                _ => format!("{sign}{digits}"),
            };
            same_as_std(&text);
        }
    }

    #[test]
    fn every_f64_printed_reads_back_bit_for_bit() {
        let mut rng = Rng(7);
        for i in 0..20_000u64 {
            // Every exponent field, the subnormals and the edges included.
            let bits = match i {
                0..=2 => [1, 0x000f_ffff_ffff_ffff, 0x7fef_ffff_ffff_ffff][i as usize],
                _ => rng.below(0x7ff0_0000_0000_0000),
            };
            let x = f64::from_bits(bits) * if i % 2 == 0 { 1.0 } else { -1.0 };
            for t in [format!("{x}"), format!("{x:e}"), format!("{x:?}")] {
                assert_eq!(parse(&t).map(f64::to_bits), Some(x.to_bits()), "{t}");
                // Extra digits move it off the printed decimal: still the standard's answer.
                let (mant, exp) = t.split_once('e').unwrap_or((&t, "0"));
                let point = if mant.contains('.') { "" } else { "." };
                let n = 1 + rng.below(30) as usize;
                let extra = rng.digits(n);
                same_as_std(&format!("{mant}{point}{extra}e{exp}"));
            }
        }
    }
}

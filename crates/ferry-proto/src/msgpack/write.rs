//! Writers. Each picks the smallest encoding for the value, as msgpack-ruby and msgpack-c do,
//! except [`write_str32`], which always uses the 5-byte str32 header (Fluentd's PackedForward).

use bytes::{BufMut, BytesMut};

/// `nil`.
pub fn write_nil(out: &mut BytesMut) {
    out.put_u8(0xc0);
}

/// `true` / `false`.
pub fn write_bool(out: &mut BytesMut, v: bool) {
    out.put_u8(if v { 0xc3 } else { 0xc2 });
}

/// A non-negative integer in its smallest form.
pub fn write_uint(out: &mut BytesMut, v: u64) {
    if v < 0x80 {
        out.put_u8(v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.put_u8(0xcc);
        out.put_u8(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.put_u8(0xcd);
        out.put_u16(v as u16);
    } else if v <= u64::from(u32::MAX) {
        out.put_u8(0xce);
        out.put_u32(v as u32);
    } else {
        out.put_u8(0xcf);
        out.put_u64(v);
    }
}

/// A signed integer in its smallest form (non-negative values are written as unsigned).
pub fn write_int(out: &mut BytesMut, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.put_u8(v as i8 as u8);
    } else if v >= i64::from(i8::MIN) {
        out.put_u8(0xd0);
        out.put_i8(v as i8);
    } else if v >= i64::from(i16::MIN) {
        out.put_u8(0xd1);
        out.put_i16(v as i16);
    } else if v >= i64::from(i32::MIN) {
        out.put_u8(0xd2);
        out.put_i32(v as i32);
    } else {
        out.put_u8(0xd3);
        out.put_i64(v);
    }
}

/// float64 (Ruby floats and Fluent Bit doubles are always float64).
pub fn write_f64(out: &mut BytesMut, v: f64) {
    out.put_u8(0xcb);
    out.put_f64(v);
}

/// float32.
pub fn write_f32(out: &mut BytesMut, v: f32) {
    out.put_u8(0xca);
    out.put_f32(v);
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("msgpack lengths are below 4 GiB: ferry never builds larger values")
}

/// A str header for `len` bytes in its smallest form.
pub fn write_str_len(out: &mut BytesMut, len: usize) {
    let len = len_u32(len);
    if len < 32 {
        out.put_u8(0xa0 | len as u8);
    } else if len <= u32::from(u8::MAX) {
        out.put_u8(0xd9);
        out.put_u8(len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.put_u8(0xda);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xdb);
        out.put_u32(len);
    }
}

/// A str (bytes are written as given; msgpack does not check UTF-8).
pub fn write_str(out: &mut BytesMut, s: &[u8]) {
    write_str_len(out, s.len());
    out.put_slice(s);
}

/// A str with the 5-byte str32 header whatever its length, as Fluentd's out_forward writes
/// PackedForward entries.
pub fn write_str32(out: &mut BytesMut, s: &[u8]) {
    out.put_u8(0xdb);
    out.put_u32(len_u32(s.len()));
    out.put_slice(s);
}

/// A bin header for `len` bytes in its smallest form.
pub fn write_bin_len(out: &mut BytesMut, len: usize) {
    let len = len_u32(len);
    if len <= u32::from(u8::MAX) {
        out.put_u8(0xc4);
        out.put_u8(len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.put_u8(0xc5);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xc6);
        out.put_u32(len);
    }
}

/// A bin.
pub fn write_bin(out: &mut BytesMut, b: &[u8]) {
    write_bin_len(out, b.len());
    out.put_slice(b);
}

/// An array header for `len` elements.
pub fn write_array_len(out: &mut BytesMut, len: usize) {
    let len = len_u32(len);
    if len < 16 {
        out.put_u8(0x90 | len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.put_u8(0xdc);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xdd);
        out.put_u32(len);
    }
}

/// A map header for `len` key/value pairs.
pub fn write_map_len(out: &mut BytesMut, len: usize) {
    let len = len_u32(len);
    if len < 16 {
        out.put_u8(0x80 | len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.put_u8(0xde);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xdf);
        out.put_u32(len);
    }
}

/// An extension value in its smallest form (fixext for 1, 2, 4, 8, 16 bytes).
pub fn write_ext(out: &mut BytesMut, ty: i8, data: &[u8]) {
    let marker = match data.len() {
        1 => Some(0xd4),
        2 => Some(0xd5),
        4 => Some(0xd6),
        8 => Some(0xd7),
        16 => Some(0xd8),
        _ => None,
    };
    if let Some(m) = marker {
        out.put_u8(m);
    } else {
        let len = len_u32(data.len());
        if len <= u32::from(u8::MAX) {
            out.put_u8(0xc7);
            out.put_u8(len as u8);
        } else if len <= u32::from(u16::MAX) {
            out.put_u8(0xc8);
            out.put_u16(len as u16);
        } else {
            out.put_u8(0xc9);
            out.put_u32(len);
        }
    }
    out.put_i8(ty);
    out.put_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut b = BytesMut::new();
        f(&mut b);
        b.to_vec()
    }

    #[test]
    fn integers_use_the_smallest_encoding() {
        assert_eq!(bytes(|b| write_uint(b, 127)), [0x7f]);
        assert_eq!(bytes(|b| write_uint(b, 200)), [0xcc, 200]);
        assert_eq!(bytes(|b| write_uint(b, 5120)), [0xcd, 0x14, 0x00]);
        assert_eq!(bytes(|b| write_int(b, -2)), [0xfe]);
        assert_eq!(bytes(|b| write_int(b, -129)), [0xd1, 0xff, 0x7f]);
        assert_eq!(
            bytes(|b| write_uint(b, 1_099_511_627_776)),
            [0xcf, 0, 0, 1, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn str32_always_has_a_five_byte_header() {
        assert_eq!(
            bytes(|b| write_str32(b, b"ab")),
            [0xdb, 0, 0, 0, 2, b'a', b'b']
        );
        assert_eq!(bytes(|b| write_str(b, b"ab")), [0xa2, b'a', b'b']);
    }
}

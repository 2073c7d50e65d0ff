//! A minimal reader of the protobuf wire format, borrowing from the input.
//!
//! etcd stores each revision as an `mvccpb.KeyValue` message and the Kubernetes API server wraps
//! objects in a `runtime.Unknown` message. Reading them field by field over borrowed slices avoids
//! copying every value of a large snapshot, which a generated decoder would do.

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0: int32, int64, uint64, bool, enum.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, string, embedded message, packed repeated field.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// Iterator over the `(field number, value)` pairs of a message. It yields `Err` with a reason and
/// then stops when the input is not valid protobuf.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    input: &'a [u8],
    failed: bool,
}

/// Returns an iterator over the fields of `message`.
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields { input: message, failed: false }
}

fn read_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let Some((&byte, rest)) = input.split_first() else {
            return Err("message ends inside a varint".into());
        };
        *input = rest;
        if shift == 63 && byte > 1 {
            return Err("varint is longer than 64 bits".into());
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint is longer than 10 bytes".into())
}

fn take<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if input.len() < len {
        return Err(format!("field of {len} bytes runs past the message's end ({} bytes left)", input.len()));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> Result<(u32, Value<'a>), String> {
        let tag = read_varint(&mut self.input)?;
        let number = u32::try_from(tag >> 3).map_err(|_| format!("field number {} is too large", tag >> 3))?;
        if number == 0 {
            return Err("field number 0".into());
        }
        let value = match tag & 7 {
            0 => Value::Varint(read_varint(&mut self.input)?),
            1 => Value::Fixed64(u64::from_le_bytes(take(&mut self.input, 8)?.try_into().unwrap_or_default())),
            2 => {
                let len = read_varint(&mut self.input)?;
                let len = usize::try_from(len).map_err(|_| format!("length {len} is too large"))?;
                Value::Bytes(take(&mut self.input, len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(take(&mut self.input, 4)?.try_into().unwrap_or_default())),
            other => return Err(format!("unsupported wire type {other} in field {number}")),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.input.is_empty() {
            return None;
        }
        let result = self.read();
        self.failed = result.is_err();
        Some(result)
    }
}

impl<'a> Value<'a> {
    /// Returns the bytes of a length-delimited field.
    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Returns a varint as a signed 64-bit integer (protobuf `int64`, two's complement).
    pub fn int64(self) -> Option<i64> {
        match self {
            Value::Varint(value) => Some(value as i64),
            _ => None,
        }
    }

    /// Returns a length-delimited field as UTF-8 text, replacing invalid sequences.
    pub fn string(self) -> Option<String> {
        self.bytes().map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varints_and_bytes() {
        // field 1 = "ab", field 2 = 300, field 3 = -1 as int64.
        let message = [0x0a, 0x02, b'a', b'b', 0x10, 0xac, 0x02, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let all: Vec<_> = fields(&message).collect::<Result<_, _>>().unwrap();
        assert_eq!(all[0], (1, Value::Bytes(b"ab")));
        assert_eq!(all[1], (2, Value::Varint(300)));
        assert_eq!(all[2].1.int64(), Some(-1));
    }

    #[test]
    fn truncated_message_is_an_error() {
        let message = [0x0a, 0x05, b'a'];
        let all: Vec<_> = fields(&message).collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
    }
}

//! Kubernetes resource quantities for storage sizes (`10Gi`, `500M`, `1.5Ti`, `1e9`), parsed to
//! bytes so that a requested size can be compared with a PVC's current request and capacity.
//!
//! The API server compares quantities by value, not by text: `1Gi` and `1024Mi` are equal. This
//! parser follows the same suffix table (binary `Ki`..`Ei`, decimal `k`..`E`, milli `m`, and
//! `e`/`E` exponents) and rounds a fractional byte count up, as the API server does for storage.

use crate::error::VolumeError;

/// Parses a quantity such as `10Gi` into bytes.
///
/// # Errors
/// [`VolumeError::InvalidSize`] for an empty value, an unknown suffix, a negative number or a
/// value beyond 2^96 bytes.
pub fn parse_bytes(value: &str) -> Result<u128, VolumeError> {
    let invalid = |reason: &str| VolumeError::InvalidSize { value: value.to_owned(), reason: reason.to_owned() };
    let text = value.trim();
    let digits_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let number = number.strip_prefix('+').unwrap_or(number);

    if number.is_empty() || number.starts_with('-') {
        return Err(invalid("expected a non-negative number followed by a unit such as Gi"));
    }
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(invalid("expected a number such as 10 or 1.5"));
    }

    // The value is mantissa * 10^-scale * base^exponent, kept exact in integers.
    let mantissa: u128 = format!("{whole}{fraction}").parse().map_err(|_| invalid("the number is too long"))?;
    let scale = fraction.len() as u32;
    let (base, power): (u128, i32) = match suffix {
        "" => (10, 0),
        "Ki" => (1024, 1),
        "Mi" => (1024, 2),
        "Gi" => (1024, 3),
        "Ti" => (1024, 4),
        "Pi" => (1024, 5),
        "Ei" => (1024, 6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        other => match other.strip_prefix(['e', 'E']).and_then(|e| e.parse::<i32>().ok()) {
            Some(exponent) => (10, exponent),
            None => return Err(invalid("unknown unit; use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P or E")),
        },
    };

    let mut numerator = mantissa;
    let mut denominator: u128 = 10u128.checked_pow(scale).ok_or_else(|| invalid("too many decimal places"))?;
    let factor = base.checked_pow(power.unsigned_abs()).ok_or_else(|| invalid("the value is too large"))?;
    if power >= 0 {
        numerator = numerator.checked_mul(factor).ok_or_else(|| invalid("the value is too large"))?;
    } else {
        denominator = denominator.checked_mul(factor).ok_or_else(|| invalid("the value is too large"))?;
    }

    let bytes = numerator.div_ceil(denominator);
    if bytes > 1u128 << 96 {
        return Err(invalid("the value is too large"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_binary_and_decimal_units() {
        assert_eq!(parse_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1024Mi").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("10G").unwrap(), 10_000_000_000);
        assert_eq!(parse_bytes("500k").unwrap(), 500_000);
        assert_eq!(parse_bytes("123").unwrap(), 123);
        assert_eq!(parse_bytes("1e3").unwrap(), 1000);
        assert_eq!(parse_bytes("+2Ki").unwrap(), 2048);
    }

    #[test]
    fn parse_rounds_fractions_up() {
        assert_eq!(parse_bytes("1500m").unwrap(), 2);
        assert_eq!(parse_bytes("0.1").unwrap(), 1);
    }

    #[test]
    fn parse_rejects_bad_values() {
        for bad in ["", "Gi", "-1Gi", "1GB", "1..5Gi", "1.2.3", "10gi", "1Zi"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} was accepted");
        }
    }
}

//! Scalar value types of the spec that carry their own parsing: byte quantities ("512m", "2Gi"),
//! durations ("30s", "1m30s") and CPU amounts.
//!
//! Each keeps the text the user wrote (so a spec round-trips unchanged) next to the normalised
//! value that hashing and the Docker adapter use. Parsing happens during deserialisation, so a bad
//! value is reported with its line, column and field path.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A number of bytes: an integer, or a string with a unit.
///
/// Units: `k`, `m`, `g`, `t` (any case, optional trailing `b`) are binary multiples, as
/// `docker run --memory 512m` reads them; `Ki`, `Mi`, `Gi`, `Ti` are the same multiples in
/// Kubernetes spelling. Fractions are allowed when they give whole bytes (`1.5Gi`).
#[derive(Clone, Debug)]
pub struct ByteQuantity {
    text: String,
    bytes: u64,
}

impl ByteQuantity {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = parse_bytes(text)?;
        Ok(Self {
            text: text.to_string(),
            bytes,
        })
    }
}

impl PartialEq for ByteQuantity {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for ByteQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "invalid quantity {text:?}: expected a number of bytes such as 512m, 2Gi or 1048576"
        ));
    }
    let shift = match unit.trim() {
        "" | "b" | "B" => 0,
        "k" | "K" | "kb" | "KB" | "Ki" => 10,
        "m" | "M" | "mb" | "MB" | "Mi" => 20,
        "g" | "G" | "gb" | "GB" | "Gi" => 30,
        "t" | "T" | "tb" | "TB" | "Ti" => 40,
        other => {
            return Err(format!(
                "invalid quantity {text:?}: unknown unit {other:?} (use k, m, g, t or Ki, Mi, Gi, Ti)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid quantity {text:?}: {number:?} is not a number"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
        return Err(format!("invalid quantity {text:?}: out of range"));
    }
    if bytes.fract() != 0.0 {
        return Err(format!(
            "invalid quantity {text:?}: not a whole number of bytes"
        ));
    }
    Ok(bytes as u64)
}

/// Formats a byte count the way people write limits: `512Mi`, `2Gi`, or bytes.
pub fn format_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        let m = 1u64 << shift;
        if bytes >= m && bytes % m == 0 {
            return format!("{}{unit}", bytes / m);
        }
    }
    bytes.to_string()
}

impl Serialize for ByteQuantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.text.parse::<u64>() {
            Ok(n) => s.serialize_u64(n),
            Err(_) => s.serialize_str(&self.text),
        }
    }
}

impl<'de> Deserialize<'de> for ByteQuantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteQuantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of bytes or a string such as 512m or 2Gi")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteQuantity, E> {
                if v > i64::MAX as u64 {
                    return Err(E::custom("quantity out of range"));
                }
                Ok(ByteQuantity {
                    text: v.to_string(),
                    bytes: v,
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteQuantity, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("quantity must not be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteQuantity, E> {
                ByteQuantity::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ByteQuantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteQuantity".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Bytes: an integer, or a number with a binary unit: k, m, g, t (as in `docker run -m 512m`) or Ki, Mi, Gi, Ti.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?\\s*([kKmMgGtT][bB]?|[KMGT]i|[bB])?$"}
            ]
        })
    }
}

/// A duration written as `30s`, `1m30s`, `500ms` or a number of seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct DurationText {
    text: String,
    value: Duration,
}

impl DurationText {
    pub fn duration(&self) -> Duration {
        self.value
    }
}

impl Serialize for DurationText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 1m30s or 500ms")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationText, E> {
                Ok(DurationText {
                    text: format!("{v}s"),
                    value: Duration::from_secs(v),
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationText, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("duration must not be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                let value = humantime::parse_duration(v.trim()).map_err(|e| {
                    E::custom(format!(
                        "invalid duration {v:?}: {e} (write e.g. 30s, 1m30s, 500ms)"
                    ))
                })?;
                Ok(DurationText {
                    text: v.to_string(),
                    value,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration such as 30s, 1m30s or 500ms, or a whole number of seconds.",
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_units_follow_docker_and_kubernetes_binary_meaning() {
        for (text, bytes) in [
            ("1048576", 1 << 20),
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("512mb", 512 << 20),
            ("2g", 2 << 30),
            ("2Gi", 2 << 30),
            ("1.5Gi", 3 << 29),
            ("10Ki", 10 << 10),
            ("64k", 64 << 10),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_byte_quantities_say_why() {
        assert!(
            parse_bytes("lots")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_bytes("2Pb").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("0.3").unwrap_err().contains("whole number"));
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn format_bytes_picks_the_largest_exact_unit() {
        assert_eq!(format_bytes(512 << 20), "512Mi");
        assert_eq!(format_bytes(2 << 30), "2Gi");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_bytes(1536 << 20), "1536Mi");
    }
}

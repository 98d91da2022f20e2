//! Lenient field codecs for a loose wire.
//!
//! The servers write JSON through `JSON.stringify` (legacy) or Go's encoder (newer): a field can be
//! missing or `null` for the same meaning, 64-bit integers from protobuf arrive as decimal strings,
//! and dates arrive as ISO-8601 strings or epoch numbers. These codecs accept every such form and
//! write back the form the server itself uses, so a decoded payload re-encodes to the same JSON.

use chrono::{DateTime, TimeZone, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A timestamp as the servers send it: ISO-8601 / RFC 3339 text, or seconds (or milliseconds,
/// for values past the year 33658) since the epoch.
pub type Timestamp = DateTime<Utc>;

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer, or an integer written as a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("integer {v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("{v} is not a whole number")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("{v:?} is not an integer")))
    }
}

/// `Option<i64>` that also accepts integers written as strings; written back as a number.
pub mod opt_int {
    use super::*;

    /// Deserializes a number, a numeric string, `null` or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        struct Opt;
        impl<'de> Visitor<'de> for Opt {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                IntVisitor.expecting(f)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(IntVisitor).map(Some)
            }
        }
        d.deserialize_option(Opt)
    }

    /// Serializes as a JSON number (or `null`).
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
}

/// `Option<i64>` for protobuf 64-bit fields: accepts numbers and strings, written back as a
/// decimal string as protobufjs writes it.
pub mod opt_int_string {
    use super::*;

    /// Deserializes a number, a numeric string, `null` or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        super::opt_int::deserialize(d)
    }

    /// Serializes as a decimal string (or `null`).
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }
}

/// `Option<i64>` for a 64-bit value that may also come as protobufjs's `Long`,
/// `{low, high, unsigned}` (as Evolution API's Socket.IO events carry it), or as a number or a
/// numeric string; written back as a number.
pub mod opt_long {
    use super::*;

    /// Deserializes a number, a numeric string, a `Long` object, `null` or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        struct Long;
        impl<'de> Visitor<'de> for Long {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, an integer written as a string, or {low, high, unsigned}")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                IntVisitor.visit_i64(v).map(Some)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                IntVisitor.visit_u64(v).map(Some)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                IntVisitor.visit_f64(v).map(Some)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                IntVisitor.visit_str(v).map(Some)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut low, mut high, mut unsigned) = (None, None, false);
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "low" => low = Some(map.next_value::<i64>()?),
                        "high" => high = Some(map.next_value::<i64>()?),
                        "unsigned" => unsigned = map.next_value::<bool>()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let (Some(low), Some(high)) = (low, high) else {
                    return Err(de::Error::custom("a Long needs low and high"));
                };
                // Two 32-bit halves, each written signed or not by protobufjs.
                let bits = ((high as u64 & 0xffff_ffff) << 32) | (low as u64 & 0xffff_ffff);
                if unsigned {
                    i64::try_from(bits)
                        .map(Some)
                        .map_err(|_| de::Error::custom(format!("{bits} is out of range")))
                } else {
                    Ok(Some(bits as i64))
                }
            }
        }
        d.deserialize_option(Long)
    }

    /// Serializes as a JSON number (or `null`).
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
}

/// `Option<Timestamp>` accepting RFC 3339 text or epoch numbers; written back as RFC 3339.
pub mod opt_time {
    use super::*;

    /// Deserializes a date, `null` or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<'a> {
            Text(std::borrow::Cow<'a, str>),
            Number(i64),
        }
        let Some(raw) = Option::<Raw<'de>>::deserialize(d)? else {
            return Ok(None);
        };
        match raw {
            Raw::Text(t) => DateTime::parse_from_rfc3339(t.trim())
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| de::Error::custom(format!("{t:?} is not an ISO-8601 date: {e}"))),
            Raw::Number(n) => {
                // Seconds until the year 33658, milliseconds after: WhatsApp uses both.
                let t = if n.unsigned_abs() < 1_000_000_000_000 {
                    Utc.timestamp_opt(n, 0).single()
                } else {
                    Utc.timestamp_millis_opt(n).single()
                };
                t.map(Some)
                    .ok_or_else(|| de::Error::custom(format!("{n} is not a valid epoch time")))
            }
        }
    }

    /// Serializes as RFC 3339 with as many fraction digits as needed and a `Z` suffix, as Go's
    /// `time.RFC3339Nano` does: the newer server's form.
    pub fn serialize<S: Serializer>(v: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.collect_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            None => s.serialize_none(),
        }
    }
}

/// `Option<Timestamp>` as [`opt_time`] reads it, written back as JavaScript's `toISOString`
/// writes it (always three fraction digits): the legacy Node server's form.
pub mod opt_time_js {
    use super::*;

    /// Deserializes a date, `null` or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        super::opt_time::deserialize(d)
    }

    /// Serializes as RFC 3339 with milliseconds and a `Z` suffix.
    pub fn serialize<S: Serializer>(v: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.collect_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            None => s.serialize_none(),
        }
    }
}

/// A value that may be missing or `null` and then takes its default (`false`, empty list).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A field name read from the wire: borrowed from the input when it can be.
#[doc(hidden)]
#[derive(Debug)]
pub struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Key<'de> {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.0.into_owned()
    }

    /// The name, borrowed from the input when it had no escapes.
    pub fn into_cow(self) -> std::borrow::Cow<'de, str> {
        self.0
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Implements `Deserialize` for a struct that keeps the fields it does not model in
/// `extra: Extra`, reading each field straight from the input.
///
/// `#[serde(flatten)]` does the same, but makes serde buffer every unknown field and re-read
/// the struct through that buffer: on a `messages.upsert` frame, about a third of the decode.
/// Each field is `"wireName" => field: Type`, optionally `= path::to::deserialize` for a field
/// read by a function; a missing field is `Default::default()` (every field of such a struct is
/// an `Option` or has a default), and a field given twice is an error.
macro_rules! lossless_deserialize {
    ($ty:ident { $($json:literal => $field:ident : $fty:ty $(= $with:path)?),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct FieldsOf;
                impl<'de> serde::de::Visitor<'de> for FieldsOf {
                    type Value = $ty;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("an object (", stringify!($ty), ")"))
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        $(let mut $field: Option<$fty> = None;)*
                        let mut extra = $crate::payload::Extra::new();
                        while let Some(key) = map.next_key::<$crate::wire::Key<'de>>()? {
                            match key.as_str() {
                                $($json => {
                                    if $field.is_some() {
                                        return Err(<A::Error as serde::de::Error>::duplicate_field($json));
                                    }
                                    $field = Some($crate::wire::lossless_deserialize!(@value map, $fty $(, $with)?));
                                })*
                                _ => {
                                    let value = map.next_value()?;
                                    extra.insert(key.into_string(), value);
                                }
                            }
                        }
                        Ok($ty {
                            $($field: $field.unwrap_or_default(),)*
                            extra,
                        })
                    }
                }
                d.deserialize_map(FieldsOf)
            }
        }
    };
    (@value $map:ident, $fty:ty) => {
        $map.next_value::<$fty>()?
    };
    (@value $map:ident, $fty:ty, $with:path) => {{
        struct With($fty);
        impl<'de> serde::Deserialize<'de> for With {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $with(d).map(With)
            }
        }
        $map.next_value::<With>()?.0
    }};
}
pub(crate) use lossless_deserialize;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize, Debug)]
    struct Probe {
        #[serde(default, with = "opt_int")]
        n: Option<i64>,
        #[serde(default, with = "opt_int_string")]
        s: Option<i64>,
        #[serde(default, with = "opt_time")]
        t: Option<Timestamp>,
        #[serde(default, deserialize_with = "null_default")]
        b: bool,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integers_as_numbers_or_strings() {
        let p = probe(r#"{"n":"1747310400","s":48213}"#).unwrap();
        assert_eq!((p.n, p.s), (Some(1747310400), Some(48213)));
        let out = serde_json::to_value(&p).unwrap();
        assert_eq!(out["n"], 1747310400);
        assert_eq!(out["s"], "48213");
        assert!(probe(r#"{"n":"12x"}"#).is_err());
        assert!(probe(r#"{"n":1.5}"#).is_err());
    }

    #[test]
    fn missing_and_null_alike() {
        let a = probe(r#"{}"#).unwrap();
        let b = probe(r#"{"n":null,"s":null,"t":null,"b":null}"#).unwrap();
        assert_eq!((a.n, a.s, a.t, a.b), (None, None, None, false));
        assert_eq!((b.n, b.s, b.t, b.b), (None, None, None, false));
    }

    #[test]
    fn dates_in_every_form() {
        let p = probe(r#"{"t":"2025-05-15T12:00:00.812Z"}"#).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap()["t"],
            "2025-05-15T12:00:00.812Z"
        );
        let secs = probe(r#"{"t":1747310400}"#).unwrap().t.unwrap();
        let millis = probe(r#"{"t":1747310400000}"#).unwrap().t.unwrap();
        assert_eq!(secs, millis);
        let offset = probe(r#"{"t":"2025-05-15T09:00:00-03:00"}"#)
            .unwrap()
            .t
            .unwrap();
        assert_eq!(offset.to_rfc3339(), "2025-05-15T12:00:00+00:00");
        assert!(probe(r#"{"t":"yesterday"}"#).is_err());
        // Extremes are refused, never a panic (`abs` of i64::MIN overflowed here once).
        assert!(probe(&format!(r#"{{"t":{}}}"#, i64::MIN)).is_err());
        assert!(probe(&format!(r#"{{"t":{}}}"#, i64::MAX)).is_err());
    }
}

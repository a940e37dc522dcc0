//! Named values: enums whose `Display` is the spelling configs, the command line and CSV files use, and whose
//! `FromStr` rejects anything else with a one-line error naming the field and what is accepted.

/// Serialises a type through its `Display`/`FromStr` pair, so configs hold the same strings as the command line.
macro_rules! serde_via_str {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_via_str;

/// `Display`, `FromStr` and serde for a fieldless enum from its `name()` and the list of its variants (written out,
/// or `all = T::ALL` where the enum already has its list); `$field` names the config field in errors.
macro_rules! named_enum {
    ($t:ty, $field:literal, [$($v:expr),+ $(,)?]) => {
        $crate::names::named_enum!($t, $field, all = [$($v),+]);
    };
    ($t:ty, $field:literal, all = $all:expr) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl std::str::FromStr for $t {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                let all = $all;
                all.iter().copied().find(|v| v.name() == s.trim()).ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|v| v.name()).collect();
                    $crate::error::Error::invalid($field, s, &format!("one of {}", names.join(", ")))
                })
            }
        }
        $crate::names::serde_via_str!($t);
    };
}
pub(crate) use named_enum;

//! The serde decoder of record format 3 that [`reader`](crate::store::reader) replaced, kept
//! as the reference the hand-written reader is checked against (a proptest in
//! [`codec`](crate::store::codec) and the `record_decode` fuzz target): compiled for tests and
//! with feature `__test-hooks` only.

use serde::Deserialize;
use serde::Deserializer;
use serde::de::Error as _;

use super::{Need, RecordView, SkipBytes, SkipMap, SkipStrings, StrList, Val};
use crate::model::ATTRS;
use crate::store::reader::variant_of;

/// The variant names of [`DbField`], in encoding order.
const DB_FIELD_VARIANTS: &[&str] = &[
    "Text",
    "Flag",
    "Int",
    "Version",
    "Strings",
    "Multi",
    "Addresses",
    "Data",
];

/// Decodes the attributes of a format-3 record a [`Need`] names, into a view given by the
/// caller.
pub(crate) struct ViewSeed<'v, 'a> {
    pub view: &'v mut RecordView<'a>,
    pub need: Need,
}

impl<'de> serde::de::DeserializeSeed<'de> for ViewSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ViewSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a user record")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let n = self.need.fields();
        let mut next = 0usize;
        loop {
            if next >= n {
                return Ok(());
            }
            let Some(tag) = seq.next_element_seed(EntrySeed {
                view: &mut *self.view,
                need: self.need,
                min: next,
            })?
            else {
                return Ok(());
            };
            next = tag + 1;
        }
    }
}

/// Steps over a list of `T` without allocating.
struct SkipList<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SkipList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = SkipList<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SkipList<T>, A::Error> {
                while seq.next_element::<T>()?.is_some() {}
                Ok(SkipList(std::marker::PhantomData))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// Steps over a stored [`DbMulti`] (`N` = 4) or [`DbAddress`] (`N` = 8): optional strings and
/// one boolean (the `primary` flag, at position 2 of 4 or 7 of 8), without checking UTF-8.
struct SkipElement<const N: usize>;

impl<'de, const N: usize> Deserialize<'de> for SkipElement<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> serde::de::Visitor<'de> for V<N> {
            type Value = SkipElement<N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list element")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SkipElement<N>, A::Error> {
                let missing = |i: usize| A::Error::invalid_length(i, &"the element's fields");
                let flag = if N == 4 { 2 } else { N - 1 };
                for i in 0..N {
                    if i == flag {
                        seq.next_element::<bool>()?.ok_or_else(|| missing(i))?;
                    } else if i == 0 && N == 4 {
                        seq.next_element::<SkipBytes>()?.ok_or_else(|| missing(i))?;
                    } else {
                        seq.next_element::<Option<SkipBytes>>()?
                            .ok_or_else(|| missing(i))?;
                    }
                }
                Ok(SkipElement)
            }
        }
        d.deserialize_tuple(N, V::<N>)
    }
}

/// One `(tag, value)` entry; yields the tag. `min` is the smallest tag allowed (tags
/// increase).
struct EntrySeed<'v, 'a> {
    view: &'v mut RecordView<'a>,
    need: Need,
    min: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for EntrySeed<'_, 'de> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> serde::de::Visitor<'de> for EntrySeed<'_, 'de> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a (tag, value) entry")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let tag: u8 = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &"a tag and a value"))?;
        let tag = usize::from(tag);
        let attr = ATTRS
            .get(tag)
            .ok_or_else(|| A::Error::custom(format!("unknown attribute tag {tag}")))?;
        if tag < self.min {
            return Err(A::Error::custom(format!(
                "attribute tag {tag} out of order"
            )));
        }
        let val = seq
            .next_element_seed(FieldSeed {
                want: variant_of(attr.kind),
                keep: self.need.has(tag),
                set: tag == crate::model::at::ROLES,
            })?
            .ok_or_else(|| A::Error::invalid_length(1, &"a tag and a value"))?;
        if let Some(v) = val {
            self.view.set(tag, v);
        }
        Ok(tag)
    }
}

/// One stored value: read in place when `keep`, else stepped over; its variant must be
/// `want`.
struct FieldSeed {
    want: u32,
    keep: bool,
    /// A set stored sorted (roles): repaired if a damaged record is not.
    set: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for FieldSeed {
    type Value = Option<Val<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_enum("DbField", DB_FIELD_VARIANTS, self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldSeed {
    type Value = Option<Val<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an attribute value")
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, e: A) -> Result<Self::Value, A::Error> {
        use serde::de::VariantAccess;
        let (i, v) = e.variant::<u32>()?;
        if i != self.want {
            return Err(A::Error::custom(format!(
                "attribute stored as variant {i}, expected {}",
                self.want
            )));
        }
        if !self.keep {
            match i {
                0 => {
                    v.newtype_variant::<SkipBytes>()?;
                }
                1 => {
                    v.newtype_variant::<bool>()?;
                }
                2 => {
                    v.newtype_variant::<i64>()?;
                }
                3 => {
                    v.newtype_variant::<u64>()?;
                }
                4 => {
                    v.newtype_variant::<SkipStrings>()?;
                }
                5 => {
                    v.newtype_variant::<SkipList<SkipElement<4>>>()?;
                }
                6 => {
                    v.newtype_variant::<SkipList<SkipElement<8>>>()?;
                }
                _ => {
                    v.newtype_variant::<SkipMap>()?;
                }
            }
            return Ok(None);
        }
        Ok(Some(match i {
            0 => Val::Text(v.newtype_variant()?),
            1 => Val::Flag(v.newtype_variant()?),
            2 => Val::Int(v.newtype_variant()?),
            3 => Val::Version(v.newtype_variant()?),
            4 => {
                let l: StrList<'de> = v.newtype_variant()?;
                Val::Strings(if self.set { l.into_set() } else { l })
            }
            5 => Val::Multi(v.newtype_variant()?),
            6 => Val::Addresses(v.newtype_variant()?),
            _ => Val::Data(v.newtype_variant()?),
        }))
    }
}

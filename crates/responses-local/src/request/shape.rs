//! JSON shapes that fail the way OpenAI does: each type here accepts only its JSON kinds and
//! answers any other with a [`Fault`] naming what it expected and what it got ("Invalid type for
//! 'model': expected a string, but got an integer instead."). serde's own messages name Rust
//! types instead ("expected u32"), so the request is built from these rather than from `String`,
//! `bool` or `Vec`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::fault::{Fault, Kind};

/// A type read from the JSON kinds it accepts; each `from_*` it does not override answers with
/// "expected [`EXPECTED`](Shape::EXPECTED), but got ...". `null` reaches a shape only where it is
/// not optional (e.g. inside an array), and is refused like any other kind.
pub(crate) trait Shape<'de>: Sized {
    /// The accepted kinds as OpenAI's messages name them, e.g. "a string or an array".
    const EXPECTED: &'static str;

    fn refuse(got: Kind) -> Fault {
        Fault::invalid_type(Self::EXPECTED, got)
    }

    fn from_string(_text: String) -> Result<Self, Fault> {
        Err(Self::refuse(Kind::String))
    }

    fn from_bool(_value: bool) -> Result<Self, Fault> {
        Err(Self::refuse(Kind::Boolean))
    }

    fn from_number(number: serde_json::Number) -> Result<Self, Fault> {
        Err(Self::refuse(number_kind(&number)))
    }

    fn from_seq<A: SeqAccess<'de>>(_seq: A) -> Result<Self, A::Error> {
        Err(de::Error::custom(Self::refuse(Kind::Array)))
    }

    fn from_map<A: MapAccess<'de>>(_map: A) -> Result<Self, A::Error> {
        Err(de::Error::custom(Self::refuse(Kind::Object)))
    }
}

/// Implements `Deserialize` for shapes through [`ShapeVisitor`].
macro_rules! deserialize_shape {
    ($($shape:ident $(<$param:ident>)?),* $(,)?) => {$(
        impl<'de $(, $param: serde::Deserialize<'de>)?> serde::Deserialize<'de>
            for $shape $(<$param>)?
        {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::request::shape::read_shape(d)
            }
        }
    )*};
}
pub(crate) use deserialize_shape;

/// Reads a [`Shape`] from any JSON value.
pub(crate) fn read_shape<'de, D: Deserializer<'de>, T: Shape<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(ShapeVisitor(PhantomData))
}

fn number_kind(number: &serde_json::Number) -> Kind {
    if number.is_f64() {
        Kind::Decimal
    } else {
        Kind::Integer
    }
}

struct ShapeVisitor<T>(PhantomData<T>);

impl<'de, T: Shape<'de>> Visitor<'de> for ShapeVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        T::from_bool(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::from_number(v.into()).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_number(v.into()).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        match serde_json::Number::from_f64(v) {
            Some(number) => T::from_number(number).map_err(E::custom),
            None => Err(E::custom(T::refuse(Kind::Decimal))),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_string(v.to_owned()).map_err(E::custom)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        T::from_string(v).map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Err(E::custom(T::refuse(Kind::Null)))
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// A JSON string.
#[derive(Debug)]
pub(crate) struct Text(pub String);

impl Shape<'_> for Text {
    const EXPECTED: &'static str = "a string";

    fn from_string(text: String) -> Result<Self, Fault> {
        Ok(Text(text))
    }
}

/// A JSON boolean.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag(pub bool);

impl Shape<'_> for Flag {
    const EXPECTED: &'static str = "a boolean";

    fn from_bool(value: bool) -> Result<Self, Fault> {
        Ok(Flag(value))
    }
}

/// A JSON number, integer or decimal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Number(pub f64);

impl Shape<'_> for Number {
    const EXPECTED: &'static str = "a number";

    fn from_number(number: serde_json::Number) -> Result<Self, Fault> {
        number
            .as_f64()
            .map(Number)
            .ok_or_else(|| Self::refuse(number_kind(&number)))
    }
}

/// A non-negative integer that fits in 32 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Count(pub u32);

impl Shape<'_> for Count {
    const EXPECTED: &'static str = "an integer";

    fn from_number(number: serde_json::Number) -> Result<Self, Fault> {
        number
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Count)
            .ok_or_else(|| Self::refuse(number_kind(&number)))
    }
}

/// A JSON array of `T`.
#[derive(Debug)]
pub(crate) struct List<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Shape<'de> for List<T> {
    const EXPECTED: &'static str = "an array";

    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(List(items))
    }
}

/// A JSON object whose values are `T`, its entries in the order given.
#[derive(Debug)]
pub(crate) struct Dict<T>(pub Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Shape<'de> for Dict<T> {
    const EXPECTED: &'static str = "an object";

    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Dict(entries))
    }
}

/// A JSON object read as the struct `T` (serde alone would also take an array for a struct).
#[derive(Debug)]
pub(crate) struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Shape<'de> for Obj<T> {
    const EXPECTED: &'static str = "an object";

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
    }
}

deserialize_shape!(Text, Flag, Number, Count, List<T>, Dict<T>, Obj<T>);

//! The SCIM 2.0 filter grammar (RFC 7644 §3.4.2.2): the [`Filter`] tree, its parser and its
//! printer.
//!
//! ```text
//! filter    = or
//! or        = and *( SP "or" SP and )          ; "and" binds tighter than "or"
//! and       = unary *( SP "and" SP unary )
//! unary     = "not" [SP] "(" filter ")" / "(" filter ")" / valuePath / attrExp
//! valuePath = attrPath "[" filter "]"          ; inside: sub-attributes of the element
//! attrExp   = attrPath SP "pr" / attrPath SP compareOp SP compValue
//! compValue = "false" / "null" / "true" / number / string   ; JSON literals
//! ```
//!
//! Keywords, operators and attribute names are case-insensitive; `data.<key>` keys are kept as
//! written. Both operands of `and`/`or` group to the left, and printing puts back exactly the
//! parentheses needed, so `parse_filter(&f.to_string()) == Ok(f)`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::model::{self, Kind, at};

/// A multi-valued attribute of the model whose elements a value path
/// (`emails[type eq "work"]`) selects: `emails`, `phoneNumbers`, `ims`, `photos`,
/// `addresses`, `x509Certificates`, `entitlements` or `roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Multi(pub(crate) u8);

/// An attribute's position in the attribute table as a `u8` (positions are below 64:
/// `model` checks it at compile time; the assert makes a wrong constant fail to compile).
#[allow(clippy::cast_possible_truncation)] // checked by the assert
const fn pos(i: usize) -> u8 {
    assert!(i < 64);
    i as u8
}

impl Multi {
    /// `emails`.
    pub const EMAILS: Multi = Multi(pos(at::EMAILS));
    /// `phoneNumbers`.
    pub const PHONE_NUMBERS: Multi = Multi(pos(at::PHONE_NUMBERS));
    /// `photos`.
    pub const PHOTOS: Multi = Multi(pos(at::PHOTOS));
    /// `roles`.
    pub const ROLES: Multi = Multi(pos(at::ROLES));

    /// The multi-valued attribute of this (SCIM) name, any case.
    #[must_use]
    pub fn named(name: &str) -> Option<Multi> {
        let i = model::lookup(&name.to_ascii_lowercase())?;
        let a = model::attr(i)?;
        (matches!(a.kind, Kind::Multi | Kind::Addresses) || i == at::ROLES)
            .then(|| Multi(u8::try_from(i).unwrap_or(u8::MAX)))
    }

    /// Its SCIM name.
    #[must_use]
    pub fn name(self) -> &'static str {
        model::attr(self.index()).map_or("", |a| a.name)
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }

    /// Whether its elements are addresses.
    pub(crate) fn is_addresses(self) -> bool {
        model::attr(self.index()).is_some_and(|a| a.kind == Kind::Addresses)
    }

    /// Whether `s` is a sub-attribute of its elements.
    pub(crate) fn has_sub(self, s: Sub) -> bool {
        if self.is_addresses() {
            !matches!(s, Sub::Value | Sub::Display)
        } else {
            matches!(s, Sub::Value | Sub::Type | Sub::Primary | Sub::Display)
        }
    }
}

/// A single-valued attribute of the model (`userName`, `name.familyName`, `title`,
/// `preferredLanguage`, the enterprise `employeeNumber`, `meta.created`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Field(pub(crate) u8);

impl Field {
    /// `userName`.
    pub const USER_NAME: Field = Field(pos(at::USERNAME));
    /// The login email (`email`; SCIM's primary `emails` element).
    pub const EMAIL: Field = Field(pos(at::EMAIL));
    /// `externalId`.
    pub const EXTERNAL_ID: Field = Field(pos(at::EXTERNAL_ID));
    /// `active`.
    pub const ACTIVE: Field = Field(pos(at::ACTIVE));
    /// `meta.created`.
    pub const CREATED: Field = Field(pos(at::CREATED));

    /// The single-valued attribute of this (SCIM) name, any case, with or without its
    /// schema URN.
    #[must_use]
    pub fn named(name: &str) -> Option<Field> {
        let i = model::lookup(&name.to_ascii_lowercase())?;
        let a = model::attr(i)?;
        let single = !matches!(
            a.kind,
            Kind::Multi | Kind::Addresses | Kind::Data | Kind::Hash
        ) && i != at::ROLES;
        single.then(|| Field(u8::try_from(i).unwrap_or(u8::MAX)))
    }

    /// Its SCIM name (within its schema).
    #[must_use]
    pub fn name(self) -> &'static str {
        model::attr(self.index()).map_or("", |a| a.name)
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }

    pub(crate) fn kind(self) -> Kind {
        model::attr(self.index()).map_or(Kind::Text, |a| a.kind)
    }
}

/// A sub-attribute of a multi-valued attribute's element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Sub {
    /// `value`: the email, phone number, role, ...
    Value,
    /// `type`: `work`, `home`, `mobile`, ...
    Type,
    /// `primary`.
    Primary,
    /// `display` (for roles: the role name).
    Display,
    /// `formatted` (addresses).
    Formatted,
    /// `streetAddress` (addresses).
    StreetAddress,
    /// `locality` (addresses).
    Locality,
    /// `region` (addresses).
    Region,
    /// `postalCode` (addresses).
    PostalCode,
    /// `country` (addresses).
    Country,
}

impl Sub {
    /// Its SCIM name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Sub::Value => "value",
            Sub::Type => "type",
            Sub::Primary => "primary",
            Sub::Display => "display",
            Sub::Formatted => "formatted",
            Sub::StreetAddress => "streetAddress",
            Sub::Locality => "locality",
            Sub::Region => "region",
            Sub::PostalCode => "postalCode",
            Sub::Country => "country",
        }
    }
    pub(crate) fn from_name(lower: &str) -> Option<Sub> {
        Some(match lower {
            "value" => Sub::Value,
            "type" => Sub::Type,
            "primary" => Sub::Primary,
            "display" => Sub::Display,
            "formatted" => Sub::Formatted,
            "streetaddress" => Sub::StreetAddress,
            "locality" => Sub::Locality,
            "region" => Sub::Region,
            "postalcode" => Sub::PostalCode,
            "country" => Sub::Country,
            _ => return None,
        })
    }
}

/// A SCIM attribute path, mapped onto the [`User`](crate::User) model (see the
/// [module docs](crate::query) for the full table).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Attr {
    /// `id`.
    Id,
    /// A single-valued attribute.
    Field(Field),
    /// A sub-attribute of the elements of a multi-valued attribute (`emails` alone means
    /// `emails.value`, `addresses` alone `addresses.formatted`).
    Multi(Multi, Sub),
    /// `data.<key>[.<key>...]`: a custom attribute, keys case-sensitive.
    Data(Vec<String>),
    /// Inside a value path: a sub-attribute of the selected element.
    Element(Sub),
}

impl Attr {
    /// The attribute a path names (outside value paths), or `None` when unknown. Names are
    /// case-insensitive and may carry their schema URN.
    ///
    /// # Examples
    /// ```
    /// use userdir::query::{Attr, Multi, Sub};
    /// assert_eq!(Attr::parse("Emails.Type"), Some(Attr::Multi(Multi::EMAILS, Sub::Type)));
    /// assert!(Attr::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").is_some());
    /// ```
    #[must_use]
    pub fn parse(path: &str) -> Option<Attr> {
        resolve_attr(path)
    }

    /// Whether the attribute holds booleans (only `eq`, `ne` and `pr` apply).
    fn is_bool(&self) -> bool {
        match self {
            Attr::Field(f) => f.kind() == Kind::Flag,
            Attr::Multi(_, Sub::Primary) | Attr::Element(Sub::Primary) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Id => f.write_str("id"),
            Attr::Field(x) => f.write_str(x.name()),
            Attr::Multi(m, s) => write!(f, "{}.{}", m.name(), s.name()),
            Attr::Element(s) => f.write_str(s.name()),
            Attr::Data(keys) => {
                f.write_str("data")?;
                for k in keys {
                    write!(f, ".{k}")?;
                }
                Ok(())
            }
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`: equal (`eq null`: not present).
    Eq,
    /// `ne`: not `eq`.
    Ne,
    /// `co`: contains (strings).
    Co,
    /// `sw`: starts with (strings).
    Sw,
    /// `ew`: ends with (strings).
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less or equal.
    Le,
}

impl CompareOp {
    fn name(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A literal of a comparison (JSON syntax).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer number.
    Int(i64),
    /// A number with a fraction or exponent (or beyond `i64`); always finite.
    Float(f64),
    /// A string.
    String(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            // `Debug` prints the shortest round-tripping form, always with `.` or `e`.
            Value::Float(x) => write!(f, "{x:?}"),
            Value::String(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}

/// A parsed SCIM filter.
///
/// # Examples
/// ```
/// use userdir::query::{parse_filter, Filter};
/// let f: Filter = r#"userName sw "jo" and (active eq true or roles eq "admin")"#.parse()?;
/// assert_eq!(parse_filter(&f.to_string())?, f);
/// assert_eq!(f.to_string(), r#"userName sw "jo" and (active eq true or roles.value eq "admin")"#);
/// # Ok::<(), userdir::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `attr op value`.
    Compare {
        /// The attribute.
        attr: Attr,
        /// The operator.
        op: CompareOp,
        /// The literal.
        value: Value,
    },
    /// `attr pr`: the attribute has a value (a non-empty one for strings and lists).
    Present(Attr),
    /// `a and b`.
    And(Box<Filter>, Box<Filter>),
    /// `a or b`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`.
    Not(Box<Filter>),
    /// `attr[filter]`: some element of a multi-valued attribute matches `filter`, whose
    /// attributes are [`Attr::Element`] sub-attributes.
    ValuePath {
        /// The multi-valued attribute.
        attr: Multi,
        /// The filter on one element.
        filter: Box<Filter>,
    },
}

impl Filter {
    /// `a and b`.
    #[must_use]
    pub fn and(self, other: Filter) -> Filter {
        Filter::And(Box::new(self), Box::new(other))
    }
    /// `a or b`.
    #[must_use]
    pub fn or(self, other: Filter) -> Filter {
        Filter::Or(Box::new(self), Box::new(other))
    }
    /// `not (a)`.
    #[must_use]
    pub fn negate(self) -> Filter {
        Filter::Not(Box::new(self))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Top,
    OrRight,
    AndLeft,
    AndRight,
}

fn write_filter(f: &mut fmt::Formatter<'_>, x: &Filter, ctx: Ctx) -> fmt::Result {
    match x {
        Filter::Compare { attr, op, value } => write!(f, "{attr} {op} {value}"),
        Filter::Present(attr) => write!(f, "{attr} pr"),
        Filter::Or(a, b) => {
            let paren = ctx != Ctx::Top;
            if paren {
                f.write_str("(")?;
            }
            write_filter(f, a, Ctx::Top)?;
            f.write_str(" or ")?;
            write_filter(f, b, Ctx::OrRight)?;
            if paren {
                f.write_str(")")?;
            }
            Ok(())
        }
        Filter::And(a, b) => {
            let paren = ctx == Ctx::AndRight;
            if paren {
                f.write_str("(")?;
            }
            write_filter(f, a, Ctx::AndLeft)?;
            f.write_str(" and ")?;
            write_filter(f, b, Ctx::AndRight)?;
            if paren {
                f.write_str(")")?;
            }
            Ok(())
        }
        Filter::Not(a) => {
            f.write_str("not (")?;
            write_filter(f, a, Ctx::Top)?;
            f.write_str(")")
        }
        Filter::ValuePath { attr, filter } => {
            write!(f, "{}[", attr.name())?;
            write_filter(f, filter, Ctx::Top)?;
            f.write_str("]")
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(f, self, Ctx::Top)
    }
}

impl FromStr for Filter {
    type Err = Error;
    fn from_str(s: &str) -> Result<Filter> {
        parse_filter(s)
    }
}

/// Parses a SCIM filter.
///
/// # Errors
/// [`Error::InvalidFilter`] with the byte offset of the first offending character and what
/// was expected there; also for filters over [`MAX_FILTER_TERMS`] terms or
/// [`MAX_FILTER_DEPTH`] nested parentheses.
///
/// # Examples
/// ```
/// use userdir::{query::parse_filter, Error};
/// assert!(parse_filter(r#"emails[type eq "work" and value co "@example.com"]"#).is_ok());
/// match parse_filter(r#"userName xx "bob""#) {
///     Err(Error::InvalidFilter { position, .. }) => assert_eq!(position, 9),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), userdir::Error>(())
/// ```
pub fn parse_filter(s: &str) -> Result<Filter> {
    let mut p = Parser {
        s,
        pos: 0,
        terms: 0,
        depth: 0,
    };
    p.ws();
    let f = p.or(None)?;
    p.ws();
    if p.pos < s.len() {
        return Err(p.err("\"and\", \"or\" or the end of the filter"));
    }
    Ok(f)
}

/// Parses the filter inside a value path of `parent` (`type eq "work"` in
/// `emails[type eq "work"]`); positions are relative to `s`.
pub(crate) fn parse_element_filter(s: &str, parent: Multi) -> Result<Filter> {
    let mut p = Parser {
        s,
        pos: 0,
        terms: 0,
        depth: 0,
    };
    p.ws();
    let f = p.or(Some(parent))?;
    p.ws();
    if p.pos < s.len() {
        return Err(p.err("\"and\", \"or\" or the end of the filter"));
    }
    Ok(f)
}

/// The attribute an attribute path names (outside value paths), or `None` when unknown.
pub(crate) fn resolve_attr(path: &str) -> Option<Attr> {
    let lower = path.to_ascii_lowercase();
    let core = model::CORE_URN;
    let (lower, path) = match model::strip_urn(&lower, core) {
        Some(rest) => (rest.to_owned(), path.get(core.len() + 1..)?),
        None => (lower.clone(), path),
    };
    // `data.<keys>`, also under userdir's extension URN: the length of the keys, which keep
    // their case.
    let data_keys = lower.strip_prefix("data.").map(str::len).or_else(|| {
        model::strip_urn(&lower, model::USERDIR_URN)
            .and_then(|r| r.strip_prefix("data."))
            .map(str::len)
    });
    if let Some(n) = data_keys {
        let keys = path.get(path.len().checked_sub(n)?..)?;
        let keys: Vec<String> = keys.split('.').map(str::to_owned).collect();
        if keys.iter().any(|k| k.is_empty() || k.contains(':')) {
            return None;
        }
        return Some(Attr::Data(keys));
    }
    match lower.as_str() {
        "id" => return Some(Attr::Id),
        "role" => return Some(Attr::Multi(Multi::ROLES, Sub::Value)),
        "imageurl" => return Some(Attr::Multi(Multi::PHOTOS, Sub::Value)),
        _ => {}
    }
    if let Some(f) = Field::named(&lower) {
        return Some(Attr::Field(f));
    }
    if let Some(m) = Multi::named(&lower) {
        let sub = if m.is_addresses() {
            Sub::Formatted
        } else {
            Sub::Value
        };
        return Some(Attr::Multi(m, sub));
    }
    let (head, sub) = lower.rsplit_once('.')?;
    let m = Multi::named(head)?;
    let sub = Sub::from_name(sub)?;
    m.has_sub(sub).then_some(Attr::Multi(m, sub))
}

const KNOWN: &str = "an attribute (userName, emails, externalId, id, active, name.familyName, roles, meta.created, data.<key>, ...)";
const OPS: &str = "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)";

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// Terms (comparisons, groups, `not`s, value paths) parsed so far: bounds the size and the
    /// depth of the tree, which is dropped, printed and evaluated recursively.
    terms: usize,
    /// Parentheses open at `pos`: bounds the parser's own recursion.
    depth: usize,
}

/// The most terms (comparisons, `not`s, parenthesized groups, value paths) a filter may have.
/// Longer filters are refused with [`Error::InvalidFilter`]: the parsed tree is dropped, printed
/// and evaluated recursively, so an unbounded filter could overflow the stack.
pub const MAX_FILTER_TERMS: usize = 256;

/// The deepest nesting of parentheses (including `not (...)`) a filter may have.
pub const MAX_FILTER_DEPTH: usize = 32;

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':' | b'$')
}

impl<'a> Parser<'a> {
    fn err(&self, expected: &str) -> Error {
        Error::InvalidFilter {
            position: self.pos,
            expected: expected.to_owned(),
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }
    fn ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
        self.pos > start
    }
    /// The run of name characters at the cursor (not consumed).
    fn word_at(&self) -> &'a str {
        let b = self.s.as_bytes();
        let mut end = self.pos;
        while b.get(end).copied().is_some_and(is_name_char) {
            end += 1;
        }
        self.s.get(self.pos..end).unwrap_or("")
    }
    /// Consumes `kw` (case-insensitive) if it is the next whole word after optional whitespace.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        if !self.ws() {
            self.pos = save;
            return false;
        }
        let w = self.word_at();
        if w.eq_ignore_ascii_case(kw) {
            self.pos += w.len();
            true
        } else {
            self.pos = save;
            false
        }
    }

    fn or(&mut self, ctx: Option<Multi>) -> Result<Filter> {
        let mut left = self.and(ctx)?;
        while self.keyword("or") {
            if !self.ws() {
                return Err(self.err("a space after \"or\""));
            }
            let right = self.and(ctx)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, ctx: Option<Multi>) -> Result<Filter> {
        let mut left = self.unary(ctx)?;
        while self.keyword("and") {
            if !self.ws() {
                return Err(self.err("a space after \"and\""));
            }
            let right = self.unary(ctx)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn group(&mut self, ctx: Option<Multi>) -> Result<Filter> {
        // at '('
        if self.depth >= MAX_FILTER_DEPTH {
            return Err(self.err(&format!("at most {MAX_FILTER_DEPTH} nested parentheses")));
        }
        self.depth += 1;
        self.pos += 1;
        self.ws();
        let f = self.or(ctx)?;
        self.ws();
        if self.peek() != Some(b')') {
            return Err(self.err("\")\""));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(f)
    }

    fn unary(&mut self, ctx: Option<Multi>) -> Result<Filter> {
        self.terms += 1;
        if self.terms > MAX_FILTER_TERMS {
            return Err(self.err(&format!(
                "the end of the filter (at most {MAX_FILTER_TERMS} terms)"
            )));
        }
        match self.peek() {
            Some(b'(') => return self.group(ctx),
            None => return Err(self.err(KNOWN)),
            _ => {}
        }
        let word = self.word_at();
        if word.eq_ignore_ascii_case("not") {
            let after = self.pos + word.len();
            let save = self.pos;
            self.pos = after;
            self.ws();
            if self.peek() == Some(b'(') {
                let f = self.group(ctx)?;
                return Ok(Filter::Not(Box::new(f)));
            }
            // `not` without a parenthesis: only valid if followed by an operator (an
            // attribute named "not" does not exist, so this is an error either way).
            if self.pos == after {
                self.pos = save;
                return Err(self.err(KNOWN));
            }
            return Err(self.err("\"(\" after \"not\""));
        }
        if !word.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
            return Err(self.err(KNOWN));
        }
        let start = self.pos;
        let attr = match ctx {
            None => resolve_attr(word),
            Some(parent) => Sub::from_name(&word.to_ascii_lowercase())
                .filter(|s| parent.has_sub(*s))
                .map(Attr::Element),
        };
        let Some(attr) = attr else {
            return Err(self.err(match ctx {
                None => KNOWN,
                Some(_) => "a sub-attribute (value, type, primary, display; for addresses formatted, streetAddress, locality, region, postalCode, country, type, primary)",
            }));
        };
        self.pos = start + word.len();
        if self.peek() == Some(b'[') {
            let lower = word.to_ascii_lowercase();
            let named = model::strip_urn(&lower, model::CORE_URN).unwrap_or(&lower);
            let multi = match (&attr, ctx, Multi::named(named)) {
                (Attr::Multi(m, _), None, Some(n)) if *m == n => n,
                _ => {
                    self.pos = start;
                    return Err(self.err(
                        "a multi-valued attribute (emails, phoneNumbers, addresses, roles, ...) before \"[\"",
                    ));
                }
            };
            self.pos += 1;
            self.ws();
            let inner = self.or(Some(multi))?;
            self.ws();
            if self.peek() != Some(b']') {
                return Err(self.err("\"]\""));
            }
            self.pos += 1;
            return Ok(Filter::ValuePath {
                attr: multi,
                filter: Box::new(inner),
            });
        }
        if !self.ws() {
            return Err(self.err("a space and an operator after the attribute"));
        }
        let op_pos = self.pos;
        let opw = self.word_at().to_ascii_lowercase();
        let op = match opw.as_str() {
            "pr" => {
                self.pos += 2;
                return Ok(Filter::Present(attr));
            }
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return Err(self.err(OPS)),
        };
        if attr.is_bool() && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Err(self.err("eq, ne or pr (the attribute is a boolean)"));
        }
        self.pos = op_pos + 2;
        if !self.ws() {
            return Err(self.err("a space and a value after the operator"));
        }
        let value_pos = self.pos;
        let value = self.value()?;
        if !matches!(op, CompareOp::Eq | CompareOp::Ne)
            && !matches!(value, Value::String(_) | Value::Int(_) | Value::Float(_))
        {
            self.pos = value_pos;
            return Err(self.err("a string or a number (for co, sw, ew, gt, ge, lt, le)"));
        }
        Ok(Filter::Compare { attr, op, value })
    }

    fn value(&mut self) -> Result<Value> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let w = self.word_at();
                let v = if w.eq_ignore_ascii_case("true") {
                    Value::Bool(true)
                } else if w.eq_ignore_ascii_case("false") {
                    Value::Bool(false)
                } else if w.eq_ignore_ascii_case("null") {
                    Value::Null
                } else {
                    return Err(self.err(VALUE));
                };
                self.pos += w.len();
                Ok(v)
            }
            _ => Err(self.err(VALUE)),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = self.digits();
        if n == 0 {
            return Err(self.err("a digit"));
        }
        if n > 1 && self.s.as_bytes().get(int_start) == Some(&b'0') {
            self.pos = int_start + 1;
            return Err(self.err("no leading zero (a JSON number)"));
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            float = true;
            if self.digits() == 0 {
                return Err(self.err("a digit after \".\""));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            float = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("a digit in the exponent"));
            }
        }
        let text = self.s.get(start..self.pos).unwrap_or("");
        if !float && let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Value::Float(x)),
            _ => {
                self.pos = start;
                Err(self.err("a finite number"))
            }
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let h = self.s.get(self.pos..self.pos + 4).unwrap_or("");
        if h.len() != 4 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.err("four hex digits after \\u"));
        }
        let v = u32::from_str_radix(h, 16).map_err(|_| self.err("four hex digits after \\u"))?;
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String> {
        // at '"'
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.s.get(self.pos..).unwrap_or("");
            let Some(c) = rest.chars().next() else {
                return Err(self.err("a closing quote"));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.pos += 1;
                    let e = self.peek();
                    let simple = match e {
                        Some(b'"') => Some('"'),
                        Some(b'\\') => Some('\\'),
                        Some(b'/') => Some('/'),
                        Some(b'b') => Some('\u{8}'),
                        Some(b'f') => Some('\u{c}'),
                        Some(b'n') => Some('\n'),
                        Some(b'r') => Some('\r'),
                        Some(b't') => Some('\t'),
                        _ => None,
                    };
                    if let Some(ch) = simple {
                        out.push(ch);
                        self.pos += 1;
                        continue;
                    }
                    if e != Some(b'u') {
                        return Err(
                            self.err("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
                        );
                    }
                    self.pos += 1;
                    let esc_pos = self.pos;
                    let hi = self.hex4()?;
                    let cp = if (0xD800..0xDC00).contains(&hi) {
                        if self.s.get(self.pos..self.pos + 2) != Some("\\u") {
                            return Err(self.err("a low surrogate \\uDC00-\\uDFFF"));
                        }
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            self.pos -= 4;
                            return Err(self.err("a low surrogate \\uDC00-\\uDFFF"));
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    match char::from_u32(cp) {
                        Some(ch) => out.push(ch),
                        None => {
                            self.pos = esc_pos;
                            return Err(self.err("a Unicode scalar value"));
                        }
                    }
                }
                c if c.is_control() => return Err(self.err("an escaped control character")),
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }
}

const VALUE: &str = "a value (a string, a number, true, false or null)";

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

/// A multi-valued SCIM attribute whose elements a value path (`emails[type eq "work"]`) selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Multi {
    /// `emails`: the user's one email, as `{value, type: "work", primary: true, display}`.
    Emails,
    /// `phoneNumbers`: the mobile phone, as `{value, type: "mobile", primary: true, display}`.
    PhoneNumbers,
    /// `roles`: one element per role, `{value, display}` (both the role name).
    Roles,
}

impl Multi {
    fn name(self) -> &'static str {
        match self {
            Multi::Emails => "emails",
            Multi::PhoneNumbers => "phoneNumbers",
            Multi::Roles => "roles",
        }
    }
}

/// A sub-attribute of a multi-valued attribute's element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Sub {
    /// `value`: the email, phone number or role.
    Value,
    /// `type`: `"work"` for the email, `"mobile"` for the phone; absent for roles.
    Type,
    /// `primary`: `true` for the email and the phone; absent for roles.
    Primary,
    /// `display`: same as `value`.
    Display,
}

impl Sub {
    fn name(self) -> &'static str {
        match self {
            Sub::Value => "value",
            Sub::Type => "type",
            Sub::Primary => "primary",
            Sub::Display => "display",
        }
    }
    fn from_name(lower: &str) -> Option<Sub> {
        Some(match lower {
            "value" => Sub::Value,
            "type" => Sub::Type,
            "primary" => Sub::Primary,
            "display" => Sub::Display,
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
    /// `userName` → `username` (compared caselessly).
    UserName,
    /// `externalId` → `external_id`.
    ExternalId,
    /// `active`.
    Active,
    /// `verified` (email verified).
    Verified,
    /// `name.givenName` → `first_name`.
    GivenName,
    /// `name.middleName` → `middle_name`.
    MiddleName,
    /// `name.familyName` → `last_name`.
    FamilyName,
    /// `name.formatted`, `displayName` → `full_name`.
    Formatted,
    /// `nickName` → `nick_name`.
    NickName,
    /// `birthDate` → `birth_date`.
    BirthDate,
    /// `imageUrl`, `photos.value` → `image_url`.
    ImageUrl,
    /// `timezone`.
    Timezone,
    /// `preferredLanguage` → any of `preferred_languages`.
    PreferredLanguage,
    /// `emails.*` (`emails` and `email` mean `emails.value`; compared caselessly).
    Emails(Sub),
    /// `phoneNumbers.*` (`phoneNumbers` means `phoneNumbers.value`) → `mobile_phone`.
    PhoneNumbers(Sub),
    /// `roles.*` (`roles`, `role` mean `roles.value`).
    Roles(Sub),
    /// `meta.created` → `insert_instant`.
    Created,
    /// `meta.lastModified` → `last_update_instant`.
    LastModified,
    /// `meta.version` → `version`.
    Version,
    /// `lastLogin` → `last_login_instant`.
    LastLogin,
    /// `expiry`.
    Expiry,
    /// `data.<key>[.<key>...]`: a custom attribute, keys case-sensitive.
    Data(Vec<String>),
    /// Inside a value path: a sub-attribute of the selected element.
    Element(Sub),
}

impl Attr {
    /// Whether the attribute holds booleans (only `eq`, `ne` and `pr` apply).
    fn is_bool(&self) -> bool {
        matches!(
            self,
            Attr::Active
                | Attr::Verified
                | Attr::Emails(Sub::Primary)
                | Attr::PhoneNumbers(Sub::Primary)
                | Attr::Roles(Sub::Primary)
                | Attr::Element(Sub::Primary)
        )
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Attr::Id => "id",
            Attr::UserName => "userName",
            Attr::ExternalId => "externalId",
            Attr::Active => "active",
            Attr::Verified => "verified",
            Attr::GivenName => "name.givenName",
            Attr::MiddleName => "name.middleName",
            Attr::FamilyName => "name.familyName",
            Attr::Formatted => "name.formatted",
            Attr::NickName => "nickName",
            Attr::BirthDate => "birthDate",
            Attr::ImageUrl => "imageUrl",
            Attr::Timezone => "timezone",
            Attr::PreferredLanguage => "preferredLanguage",
            Attr::Created => "meta.created",
            Attr::LastModified => "meta.lastModified",
            Attr::Version => "meta.version",
            Attr::LastLogin => "lastLogin",
            Attr::Expiry => "expiry",
            Attr::Emails(s) => return write!(f, "emails.{}", s.name()),
            Attr::PhoneNumbers(s) => return write!(f, "phoneNumbers.{}", s.name()),
            Attr::Roles(s) => return write!(f, "roles.{}", s.name()),
            Attr::Element(s) => s.name(),
            Attr::Data(keys) => {
                f.write_str("data")?;
                for k in keys {
                    write!(f, ".{k}")?;
                }
                return Ok(());
            }
        };
        f.write_str(s)
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

const CORE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:user:";

/// The attribute an attribute path names (outside value paths), or `None` when unknown.
pub(crate) fn resolve_attr(path: &str) -> Option<Attr> {
    let lower = path.to_ascii_lowercase();
    let (lower, path) = match lower.strip_prefix(CORE_URN) {
        Some(rest) => (rest.to_owned(), path.get(CORE_URN.len()..)?),
        None => (lower.clone(), path),
    };
    if let Some(keys) = lower.strip_prefix("data.") {
        let keys = path.get(path.len() - keys.len()..)?;
        let keys: Vec<String> = keys.split('.').map(str::to_owned).collect();
        if keys.iter().any(|k| k.is_empty() || k.contains(':')) {
            return None;
        }
        return Some(Attr::Data(keys));
    }
    let multi = |m: &str| -> Option<Sub> {
        match lower.strip_prefix(m) {
            Some("") => Some(Sub::Value),
            Some(rest) => Sub::from_name(rest.strip_prefix('.')?),
            None => None,
        }
    };
    if lower.starts_with("emails") {
        return multi("emails").map(Attr::Emails);
    }
    if lower.starts_with("phonenumbers") {
        return multi("phonenumbers").map(Attr::PhoneNumbers);
    }
    if lower.starts_with("roles") {
        return multi("roles").map(Attr::Roles);
    }
    Some(match lower.as_str() {
        "id" => Attr::Id,
        "username" => Attr::UserName,
        "email" => Attr::Emails(Sub::Value),
        "role" => Attr::Roles(Sub::Value),
        "externalid" => Attr::ExternalId,
        "active" => Attr::Active,
        "verified" => Attr::Verified,
        "name.givenname" => Attr::GivenName,
        "name.middlename" => Attr::MiddleName,
        "name.familyname" => Attr::FamilyName,
        "name.formatted" | "displayname" => Attr::Formatted,
        "nickname" => Attr::NickName,
        "birthdate" => Attr::BirthDate,
        "imageurl" | "photos.value" | "photos" => Attr::ImageUrl,
        "timezone" => Attr::Timezone,
        "preferredlanguage" => Attr::PreferredLanguage,
        "meta.created" | "insertinstant" => Attr::Created,
        "meta.lastmodified" | "lastupdateinstant" => Attr::LastModified,
        "meta.version" => Attr::Version,
        "lastlogin" | "lastlogininstant" => Attr::LastLogin,
        "expiry" => Attr::Expiry,
        _ => return None,
    })
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
            Some(_) => Sub::from_name(&word.to_ascii_lowercase()).map(Attr::Element),
        };
        let Some(attr) = attr else {
            return Err(self.err(match ctx {
                None => KNOWN,
                Some(_) => "a sub-attribute (value, type, primary, display)",
            }));
        };
        self.pos = start + word.len();
        if self.peek() == Some(b'[') {
            let lower = word.to_ascii_lowercase();
            let multi = match (&attr, ctx) {
                (Attr::Emails(Sub::Value), None) if lower.ends_with("emails") => Multi::Emails,
                (Attr::PhoneNumbers(Sub::Value), None) if lower.ends_with("phonenumbers") => {
                    Multi::PhoneNumbers
                }
                (Attr::Roles(Sub::Value), None) if lower.ends_with("roles") => Multi::Roles,
                _ => {
                    self.pos = start;
                    return Err(self.err(
                        "a multi-valued attribute (emails, phoneNumbers, roles) before \"[\"",
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

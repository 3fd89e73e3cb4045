//! The SCIM filter parser: operators, precedence, literals, value paths, errors, round trips.

use proptest::prelude::*;
use userdir::Error;
use userdir::query::{Attr, CompareOp, Field, Filter, Multi, Sub, Value, parse_filter};

/// The attribute a filter path names.
fn at(name: &str) -> Attr {
    Attr::parse(name).expect(name)
}

fn cmp(attr: Attr, op: CompareOp, value: Value) -> Filter {
    Filter::Compare { attr, op, value }
}
fn s(x: &str) -> Value {
    Value::String(x.to_owned())
}
fn p(x: &str) -> Filter {
    match parse_filter(x) {
        Ok(f) => f,
        Err(e) => panic!("{x:?} does not parse: {e}"),
    }
}
fn err_at(x: &str) -> (usize, String) {
    match parse_filter(x) {
        Err(Error::InvalidFilter { position, expected }) => (position, expected),
        other => panic!("{x:?} should fail, got {other:?}"),
    }
}

#[test]
fn every_operator() {
    for (name, op) in [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ] {
        let f = p(&format!(r#"userName {name} "bob""#));
        assert_eq!(f, cmp(at("userName"), op, s("bob")));
        // Operators are case-insensitive.
        let f = p(&format!(r#"userName {} "bob""#, name.to_uppercase()));
        assert_eq!(f, cmp(at("userName"), op, s("bob")));
    }
    assert_eq!(
        p("title pr".replace("title", "nickName").as_str()),
        Filter::Present(at("nickName"))
    );
    assert_eq!(p("emails PR"), Filter::Present(at("emails.value")));
}

#[test]
fn precedence_and_binds_tighter_than_or() {
    let a = || cmp(at("userName"), CompareOp::Eq, s("a"));
    let b = || cmp(at("active"), CompareOp::Eq, Value::Bool(true));
    let c = || cmp(at("roles.value"), CompareOp::Eq, s("c"));
    assert_eq!(
        p(r#"userName eq "a" or active eq true and roles eq "c""#),
        a().or(b().and(c()))
    );
    assert_eq!(
        p(r#"userName eq "a" and active eq true or roles eq "c""#),
        a().and(b()).or(c())
    );
    assert_eq!(
        p(r#"(userName eq "a" or active eq true) and roles eq "c""#),
        a().or(b()).and(c())
    );
    // Left associative.
    assert_eq!(
        p(r#"userName eq "a" or active eq true or roles eq "c""#),
        a().or(b()).or(c())
    );
    assert_eq!(
        p(r#"userName eq "a" or (active eq true or roles eq "c")"#),
        a().or(b().or(c()))
    );
}

#[test]
fn not_and_nesting() {
    let a = cmp(at("userName"), CompareOp::Eq, s("a"));
    assert_eq!(p(r#"not (userName eq "a")"#), a.clone().negate());
    assert_eq!(p(r#"NOT(userName eq "a")"#), a.clone().negate());
    assert_eq!(
        p(r#"not (not (userName eq "a"))"#),
        a.clone().negate().negate()
    );
    assert_eq!(p(r#"((( userName eq "a" )))"#), a.clone());
    assert_eq!(
        p(r#"not (userName eq "a") and not (userName eq "a" or active eq false)"#),
        a.clone().negate().and(
            a.or(cmp(at("active"), CompareOp::Eq, Value::Bool(false)))
                .negate()
        )
    );
}

#[test]
fn literals_and_escapes() {
    let v = |x: &str| match p(&format!("data.k eq {x}")) {
        Filter::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(v("true"), Value::Bool(true));
    assert_eq!(v("FALSE"), Value::Bool(false));
    assert_eq!(v("null"), Value::Null);
    assert_eq!(v("0"), Value::Int(0));
    assert_eq!(v("-42"), Value::Int(-42));
    assert_eq!(v("1.5"), Value::Float(1.5));
    assert_eq!(v("-2.5e3"), Value::Float(-2500.0));
    assert_eq!(v("1E2"), Value::Float(100.0));
    assert_eq!(v("99999999999999999999"), Value::Float(1e20));
    assert_eq!(v(r#""""#), s(""));
    assert_eq!(v(r#""a\"b\\c\/d""#), s("a\"b\\c/d"));
    assert_eq!(v(r#""\b\f\n\r\t""#), s("\u{8}\u{c}\n\r\t"));
    assert_eq!(v(r#""\u00e9\u00C9""#), s("éÉ"));
    assert_eq!(v(r#""\ud83d\ude00""#), s("😀"));
    assert_eq!(v(r#""straße ａｄｍｉｎ""#), s("straße ａｄｍｉｎ"));
}

#[test]
fn attribute_names() {
    let a = |x: &str| match p(&format!("{x} pr")) {
        Filter::Present(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(a("USERNAME"), at("userName"));
    assert_eq!(
        a("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
        at("userName")
    );
    assert_eq!(a("emails"), at("emails.value"));
    assert_eq!(a("Emails.Value"), at("emails.value"));
    // `email` is the login email (the primary element of `emails`), not every email.
    assert_eq!(a("email"), Attr::Field(Field::EMAIL));
    assert_ne!(a("email"), at("emails.value"));
    assert_eq!(a("emails.type"), at("emails.type"));
    assert_eq!(a("externalid"), at("externalId"));
    assert_eq!(a("name.FAMILYNAME"), at("name.familyName"));
    // RFC 7643: displayName and name.formatted are two attributes.
    assert_ne!(a("displayName"), at("name.formatted"));
    assert_eq!(a("DisplayName"), at("displayName"));
    assert_eq!(
        a("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
        a("employeeNumber")
    );
    assert_eq!(
        a("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        a("manager")
    );
    assert_eq!(
        a("addresses.postalCode"),
        Attr::Multi(Multi::named("addresses").unwrap(), Sub::PostalCode)
    );
    assert_eq!(
        a("ims"),
        Attr::Multi(Multi::named("ims").unwrap(), Sub::Value)
    );
    for unknown in ["password", "emails.locality", "addresses.value", "nosuch"] {
        assert!(parse_filter(&format!("{unknown} pr")).is_err(), "{unknown}");
    }
    assert_eq!(a("role"), at("roles.value"));
    assert_eq!(a("roles.value"), at("roles.value"));
    assert_eq!(a("meta.created"), at("meta.created"));
    assert_eq!(a("meta.lastModified"), at("meta.lastModified"));
    assert_eq!(a("phoneNumbers.value"), at("phoneNumbers.value"));
    assert_eq!(
        a("DATA.Laptop.Model"),
        Attr::Data(vec!["Laptop".into(), "Model".into()])
    );
}

#[test]
fn value_paths() {
    assert_eq!(
        p(r#"emails[type eq "work" and value co "@example.com"]"#),
        Filter::ValuePath {
            attr: Multi::EMAILS,
            filter: Box::new(
                cmp(Attr::Element(Sub::Type), CompareOp::Eq, s("work")).and(cmp(
                    Attr::Element(Sub::Value),
                    CompareOp::Co,
                    s("@example.com")
                ))
            ),
        }
    );
    assert_eq!(
        p(r#"userName sw "a" and roles[not (value eq "x")]"#),
        cmp(at("userName"), CompareOp::Sw, s("a")).and(Filter::ValuePath {
            attr: Multi::ROLES,
            filter: Box::new(cmp(Attr::Element(Sub::Value), CompareOp::Eq, s("x")).negate()),
        })
    );
}

#[test]
fn malformed_inputs_report_the_position() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "attribute"),
        ("   ", 3, "attribute"),
        (r#"userName xx "bob""#, 9, "operator"),
        ("userName eq", 11, "value"),
        ("userName eq ", 12, "value"),
        (r#"userName eq "bob"#, 16, "closing quote"),
        (r#"(userName eq "a""#, 16, "\")\""),
        (r#"userName eq "a" xor x"#, 16, "\"and\""),
        (r#"foo eq 1"#, 0, "attribute"),
        (r#"name.fooName eq "x""#, 0, "attribute"),
        ("active gt 1", 7, "boolean"),
        ("userName co true", 12, "string or a number"),
        ("userName lt null", 12, "string or a number"),
        (r#"not userName eq "a""#, 4, "\"(\" after \"not\""),
        (r#"emails[type eq "work""#, 21, "\"]\""),
        (r#"emails[foo eq "x"]"#, 7, "sub-attribute"),
        (r#"userName[value eq "x"]"#, 0, "multi-valued"),
        (r#"userName eq "\x""#, 14, "escape"),
        (r#"userName eq "\u12""#, 15, "hex"),
        (r#"userName eq "\ud800x""#, 19, "low surrogate"),
        ("userName eq 01", 13, "leading zero"),
        ("userName eq 1.", 14, "digit"),
        ("userName eq 1e", 14, "digit"),
        ("userName eq 1e999", 12, "finite"),
        ("userName eq bob", 12, "value"),
        ("userName pr and", 15, "space"),
        (r#"userName eq "a" and ()"#, 21, "attribute"),
        (r#"userName eq "a")"#, 15, "\"and\""),
        ("userName\teq\t\"a\"\tand", 19, "space"),
        ("data. pr", 0, "attribute"),
    ];
    for (input, pos, expected) in cases {
        let (at, what) = err_at(input);
        assert_eq!(at, *pos, "position for {input:?} (expected {what})");
        assert!(
            what.contains(expected),
            "{input:?}: expected message {what:?} to mention {expected:?}"
        );
    }
    // The error message names both.
    let e = parse_filter(r#"userName xx "bob""#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("position 9") && e.contains("operator"), "{e}");
}

#[test]
fn display_prints_canonical_names() {
    let f = p(r#"EMAIL eq "A@b.c" or not (role eq "x") and displayName co "q""#);
    assert_eq!(
        f.to_string(),
        r#"email eq "A@b.c" or not (roles.value eq "x") and displayName co "q""#
    );
    let f = p(r#"(a.b pr)"#.replace("a.b", "data.a.b").as_str());
    assert_eq!(f.to_string(), "data.a.b pr");
}

// ---- round trip proptest ----

fn top_attr() -> impl Strategy<Value = Attr> {
    prop_oneof![
        Just(Attr::Id),
        Just(at("userName")),
        Just(at("externalId")),
        Just(at("active")),
        Just(at("verified")),
        Just(at("name.givenName")),
        Just(at("name.familyName")),
        Just(at("name.formatted")),
        Just(at("nickName")),
        Just(at("birthDate")),
        Just(at("preferredLanguage")),
        Just(at("meta.created")),
        Just(at("meta.lastModified")),
        Just(at("meta.version")),
        Just(at("lastLogin")),
        prop_oneof![Just(Sub::Value), Just(Sub::Type), Just(Sub::Primary)]
            .prop_map(|s| Attr::Multi(Multi::EMAILS, s)),
        Just(at("title")),
        Just(at(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
        )),
        Just(at("addresses.locality")),
        Just(at("roles.value")),
        Just(at("phoneNumbers.value")),
        prop::collection::vec("[A-Za-z][A-Za-z0-9_-]{0,6}", 1..3).prop_map(Attr::Data),
    ]
}

fn element_attr() -> impl Strategy<Value = Attr> {
    prop_oneof![
        Just(Attr::Element(Sub::Value)),
        Just(Attr::Element(Sub::Type)),
        Just(Attr::Element(Sub::Primary)),
        Just(Attr::Element(Sub::Display)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::Float),
        any::<String>().prop_map(Value::String),
        "[a-z\"\\\\ ]{0,6}".prop_map(Value::String),
    ]
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Co),
        Just(CompareOp::Sw),
        Just(CompareOp::Ew),
        Just(CompareOp::Gt),
        Just(CompareOp::Ge),
        Just(CompareOp::Lt),
        Just(CompareOp::Le),
    ]
}

fn is_bool(a: &Attr) -> bool {
    *a == at("active")
        || *a == at("verified")
        || matches!(
            a,
            Attr::Multi(_, Sub::Primary) | Attr::Element(Sub::Primary)
        )
}

/// A comparison that the grammar accepts (boolean attributes take eq/ne, ordering and
/// substring operators take strings and numbers).
fn leaf(attr: impl Strategy<Value = Attr>) -> impl Strategy<Value = Filter> {
    (attr, op(), value(), any::<bool>()).prop_map(|(attr, mut op, value, present)| {
        if present {
            return Filter::Present(attr);
        }
        let orderable = matches!(value, Value::String(_) | Value::Int(_) | Value::Float(_));
        if is_bool(&attr) || !orderable {
            op = if matches!(op, CompareOp::Ne | CompareOp::Gt | CompareOp::Lt) {
                CompareOp::Ne
            } else {
                CompareOp::Eq
            };
        }
        Filter::Compare { attr, op, value }
    })
}

fn tree(l: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
    l.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
            inner.prop_map(Filter::negate),
        ]
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    let element = tree(leaf(element_attr()).boxed()).boxed();
    let value_path = (
        prop_oneof![
            Just(Multi::EMAILS),
            Just(Multi::ROLES),
            Just(Multi::PHONE_NUMBERS)
        ],
        element,
    )
        .prop_map(|(attr, f)| Filter::ValuePath {
            attr,
            filter: Box::new(f),
        });
    tree(prop_oneof![4 => leaf(top_attr()), 1 => value_path].boxed())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn display_parses_back_to_the_same_tree(f in filter()) {
        let text = f.to_string();
        let back = parse_filter(&text);
        prop_assert!(back.is_ok(), "{text:?}: {back:?}");
        prop_assert_eq!(back.ok(), Some(f), "{}", text);
    }

    #[test]
    fn parser_never_panics(s in "\\PC{0,40}") {
        let _ = parse_filter(&s);
    }

    #[test]
    fn parser_never_panics_on_filter_like_text(s in "[a-zA-Z.\\[\\]()\" \\\\0-9]{0,40}") {
        let _ = parse_filter(&s);
    }
}

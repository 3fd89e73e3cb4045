//! No output, error or `Debug` carries any part of a password, hash, salt or token: random
//! passwords (with `$`, so that they look like the start of a hash) are fed through every
//! error path of create, import (library rows and every JSON reader), login, change password,
//! password reset and patch, and every message is checked.
//!
//! `LEAK_PROPTEST_CASES` sets the number of cases (default 24).

use proptest::prelude::*;
use userdir::json::{self, Format};
use userdir::{
    Argon2Params, AttrValue, Directory, Error, ImportBatch, ManualClock, NewUser, PatchOp,
    StoredHash,
};

fn cases() -> u32 {
    std::env::var("LEAK_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

/// Fails when `text` holds any 6-character piece of `secret`.
fn assert_clean(secret: &str, text: &str, what: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for w in chars.windows(6) {
        let piece: String = w.iter().collect();
        assert!(
            !text.contains(&piece),
            "{what}: {piece:?} of the secret shows in {text:?}"
        );
    }
}

fn check_err(secret: &str, e: &Error, what: &str) {
    assert_clean(secret, &e.to_string(), what);
    assert_clean(secret, &format!("{e:?}"), what);
}

fn password() -> impl Strategy<Value = String> {
    // Letters and digits around `$` signs: the shape of `$uperSecretDollarPw` and of hashes.
    "[A-Za-z0-9]{0,6}\\$[A-Za-z0-9]{6,14}(\\$[A-Za-z0-9/+.]{0,10}){0,3}"
}

fn dir() -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .clock(ManualClock::new(1_700_000_000_000))
        .in_memory()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn no_error_path_shows_the_password(pw in password(), other in password()) {
        let d = dir();
        d.create(NewUser::with_username("ann").email("ann@example.com").password("correct horse"))
            .unwrap();
        let mut errors: Vec<(String, Error)> = Vec::new();
        let mut push = |what: &str, r: Result<userdir::User, Error>| {
            if let Err(e) = r {
                errors.push((what.to_owned(), e));
            }
        };

        // create: unsupported hash, hash-looking plaintext, policy, confirmation, login id.
        push("create hash", d.create(NewUser::with_username("h").password_hash(StoredHash::from_encoded(pw.clone()))));
        push("create $2b$", d.create(NewUser::with_username("b").password(format!("$2b${pw}"))));
        push("create argon", d.create(NewUser::with_username("a").password(format!("$argon2id${pw}"))));
        let short: String = pw.chars().take(5).collect();
        push("create short", d.create(NewUser::with_username("s").password(short)));
        push("create confirm", d.create(NewUser::with_username("c").password(pw.clone()).confirm(other.clone())));
        push("create same as login", d.create(NewUser::with_username(pw.replace('$', "x")).password(pw.replace('$', "x"))));
        push("create long", d.create(NewUser::with_username("l").password(pw.repeat(40))));

        // login, change password, reset.
        let login = d.authenticate("ann", &pw).map(|l| l.user);
        push("login wrong", login);
        push("login unknown", d.authenticate(&pw, &pw).map(|l| l.user));
        push("change wrong current", d.change_password("ann", &pw, &other));
        push("change policy", d.change_password("ann", "correct horse", &pw.chars().take(3).collect::<String>()));
        push("reset bad token", d.reset_password(&pw, &other));
        let token = d.start_password_reset("ann").unwrap();
        push("reset policy", d.reset_password(&token, &pw.chars().take(3).collect::<String>()));

        // patch: the password is read-only, other paths get the password as a value.
        let id = d.find_by_username("ann").unwrap().unwrap().id;
        for op in [
            PatchOp::replace("password", pw.as_str()),
            PatchOp::replace("active", pw.as_str()),
            PatchOp::replace("emails", pw.as_str()),
            PatchOp::replace("meta.created", pw.as_str()),
            PatchOp::add("data", AttrValue::String(pw.clone())),
        ] {
            push("patch", d.patch(id, &[op], None));
        }

        // import: library rows.
        let rows = vec![
            NewUser::with_username("r0").password_hash(StoredHash::from_encoded(pw.clone())),
            NewUser::with_username("r1").password(format!("$2y${pw}")),
            NewUser::with_username("r2").password(pw.chars().take(4).collect::<String>()),
            NewUser::with_username("r3").password(pw.clone()).confirm(other.clone()),
        ];
        if let Err(e) = d.import(ImportBatch::new(rows)) {
            errors.push(("import".into(), e));
        }

        // import: every JSON reader and scheme.
        let q = serde_json::to_string(&pw).unwrap();
        let docs = [
            (Format::FusionAuth, format!(r#"{{"users":[{{"username":"j","password":{q},"encryptionScheme":"userdir-phc"}}]}}"#)),
            (Format::FusionAuth, format!(r#"{{"users":[{{"username":"j","password":{q},"encryptionScheme":"bcrypt","salt":{q},"factor":10}}]}}"#)),
            (Format::FusionAuth, format!(r#"{{"users":[{{"username":"j","password":{q},"encryptionScheme":"salted-pbkdf2-hmac-sha256","salt":{q},"factor":24000}}]}}"#)),
            (Format::FusionAuth, format!(r#"{{"users":[{{"username":"j","password":{q},"encryptionScheme":"salted-md5"}}]}}"#)),
            (Format::FusionAuth, format!(r#"{{"users":[{{"username":"j","password":{q},"password":{q}}}]}}"#)),
            (Format::FusionAuth, format!(r#"{{"users":[{{"username":"j","password":{q}"#)),
            (Format::JsonLines, format!("{{\"username\":\"j\",\"password\":{q},\"encryptionScheme\":\"userdir-phc\"}}\n{{\"password\":{q} x}}\n")),
            (Format::Fuse, format!(r#"{{"users":[{{"username":"j","password":{q},"password_confirmation":"other"}}]}}"#)),
            (Format::Scim, format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"j","password":{q},"meta":{{"created":{q}}}}}"#)),
        ];
        for (format, text) in docs {
            match json::read(format, &text) {
                Err(e) => errors.push((format!("read {format}"), e)),
                Ok(rows) => {
                    if let Err(e) = d.import(ImportBatch::new(rows)) {
                        errors.push((format!("import {format}"), e));
                    }
                }
            }
            let out = json::read_stream(Some(format), None, text.as_bytes(), json::ReadLimits::default(), &mut |p| {
                assert_clean(&pw, &p.to_string(), "stream problem");
            });
            for p in &out.problems {
                assert_clean(&pw, &format!("{p} {p:?}"), "stream problem");
            }
        }

        prop_assert!(errors.len() >= 20, "every path failed: {}", errors.len());
        for (what, e) in &errors {
            check_err(&pw, e, what);
            check_err(&other, e, what);
        }
        // Debug of what holds a password or hash.
        let u = d.find_by_username("ann").unwrap().unwrap();
        assert_clean("correct horse", &format!("{u:?}"), "user debug");
        let h = StoredHash::from_encoded(pw.clone());
        assert_clean(&pw, &format!("{h:?} {}", h.scheme()), "hash debug");
        let n = NewUser::with_username("x").password(pw.clone()).confirm(pw.clone());
        assert_clean(&pw, &format!("{n:?}"), "new user debug");
        assert_clean(token.as_str(), &format!("{token:?}"), "token debug");
    }
}

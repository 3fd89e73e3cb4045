//! Lookups build short index keys on the stack and long ones on the heap: both kinds are found,
//! by every lookup and by search.

mod common;

use userdir::NewUser;
use userdir::query::Search;

#[test]
fn long_and_short_login_keys_and_external_ids_are_found() {
    let (d, _) = common::dir();
    for len in [1, 100, 126, 127, 128, 200, 256] {
        let name = format!("{}{}", "Ab".repeat(len / 2), "c".repeat(len % 2));
        let email = format!("{}@x.io", "e".repeat(len.min(60)) + &len.to_string());
        let external = "x".repeat(len);
        let u = d
            .create(
                NewUser::with_username(&name)
                    .email(&email)
                    .external_id(&external),
            )
            .unwrap();
        let upper = name.to_uppercase();
        assert_eq!(
            d.find_by_username(&upper).unwrap().unwrap().id,
            u.id,
            "{len}"
        );
        assert_eq!(d.find_by_login_id(&upper).unwrap().unwrap().id, u.id);
        assert_eq!(d.find_by_email(&email).unwrap().unwrap().id, u.id);
        assert_eq!(d.find_by_external_id(&external).unwrap().unwrap().id, u.id);
        assert_eq!(d.resolve(&external).unwrap().unwrap().id, u.id);
        let found = d
            .search(&Search::filter(&format!(r#"userName eq "{upper}""#)).unwrap())
            .unwrap();
        assert_eq!(found.users.len(), 1);
        assert_eq!(found.users[0].id, u.id);
        let found = d
            .search(
                &Search::filter(&format!(r#"userName co "{}""#, &upper[upper.len() / 2..]))
                    .unwrap(),
            )
            .unwrap();
        assert!(found.users.iter().any(|x| x.id == u.id));
    }
    assert!(d.find_by_username(&"q".repeat(300)).unwrap().is_none());
}

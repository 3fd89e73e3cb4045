//! Quick start: a directory file in a temporary folder, users created, found caselessly,
//! deactivated and reactivated. Run with `cargo run --example quickstart`.

use userdir::{Directory, Error, NewUser};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folder = std::env::temp_dir().join(format!("userdir-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let path = folder.join("users.redb");
    // The library's real defaults: OWASP argon2id parameters, durable commits.
    let dir = Directory::open(&path)?;
    println!("opened {}", path.display());

    let t = std::time::Instant::now();
    let johnny = dir.create(
        NewUser::with_username("Johnny123")
            .email("John@Example.com")
            .first_name("John")
            .role("admin")
            .password("correct horse battery")
            .confirm("correct horse battery"),
    )?;
    println!(
        "created {} ({}), email stored as {:?}, password hashed with argon2id in {:?}",
        johnny.username.as_deref().unwrap_or(""),
        johnny.id,
        johnny.email.as_deref().unwrap_or(""),
        t.elapsed()
    );
    let strasse = dir.create(NewUser::with_username("Straße").email("anna@example.org"))?;
    println!(
        "created {:?} ({})",
        strasse.username.as_deref().unwrap_or(""),
        strasse.id
    );

    for probe in ["JOHNNY123", "john@EXAMPLE.com", "STRASSE", "nobody"] {
        let t = std::time::Instant::now();
        let found = dir.find_by_login_id(probe)?;
        println!(
            "find_by_login_id({probe:?}) -> {:?} in {:?}",
            found.map(|u| u.profile.username.unwrap_or_default()),
            t.elapsed()
        );
    }

    match dir.create(NewUser::with_username("johnny123")) {
        Err(Error::DuplicateUsername { existing }) => {
            println!("creating \"johnny123\" again is refused: taken by {existing}");
        }
        other => println!("unexpected: {other:?}"),
    }

    let u = dir.deactivate(johnny.id)?;
    println!(
        "deactivated {}: active = {}, version {}",
        u.id, u.active, u.version
    );
    match dir.create(NewUser::with_email("JOHN@example.com")) {
        Err(e) => println!("a deactivated user keeps its email: {e}"),
        Ok(_) => println!("unexpected: email reused"),
    }
    let u = dir.reactivate(johnny.id)?;
    println!(
        "reactivated {}: active = {}, version {}",
        u.id, u.active, u.version
    );

    dir.check_integrity()?;
    println!("{} users, integrity ok", dir.count()?);
    drop(dir);
    std::fs::remove_dir_all(&folder)?;
    Ok(())
}

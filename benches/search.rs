//! Search at scale, beside SQLite on the same data.
//!
//! ```text
//! cargo bench --bench search -- --warm-up-time 1 --measurement-time 3
//! USERDIR_BENCH_USERS=1000000 cargo bench --bench search -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Builds one directory file (100k users by default, `USERDIR_BENCH_USERS` to change; no
//! passwords, `Durability::Eventual`) and one SQLite file with the same rows and the indexes a
//! SQLite user would create (a `NOCASE` unique username index, the roles table index, the
//! insert-instant index). Each query returns the first page of 20 users *and* the total count,
//! in both engines.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use userdir::query::{Search, SortField};

mod search_data;
use search_data::*;

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("USERDIR_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let data = rows(n);
    let t = std::time::Instant::now();
    let dir = build_userdir(&tmp.path().join("users.redb"), &data);
    eprintln!("userdir: {n} users loaded in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let sql = build_sqlite(&tmp.path().join("users.sqlite"), &data);
    eprintln!("sqlite: {n} users loaded in {:?}", t.elapsed());
    let probe = &data[n / 2].username;

    let mut g = c.benchmark_group(format!("search_{n}"));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let s = Search::filter(&format!(r#"userName eq "{}""#, probe.to_uppercase())).unwrap();
    assert_eq!(dir.search(&s).unwrap().total, 1);
    g.bench_function("userdir/userName_eq", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });

    let s = Search::filter(r#"userName sw "ab""#).unwrap().limit(20);
    let ours = dir.search(&s).unwrap();
    let theirs = sql_page(&sql, SW_PAGE, SW_COUNT);
    assert_eq!(ours.total, u64::try_from(theirs.1).unwrap());
    eprintln!("userName sw \"ab\": {} matches", ours.total);
    g.bench_function("userdir/userName_sw_ab_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.bench_function("sqlite/userName_sw_ab_page20", |b| {
        b.iter(|| black_box(sql_page(&sql, SW_PAGE, SW_COUNT)));
    });

    let s = Search::filter(r#"role eq "role3""#).unwrap().limit(20);
    eprintln!(
        "role eq \"role3\": {} matches",
        dir.search(&s).unwrap().total
    );
    assert_eq!(
        dir.search(&s).unwrap().total,
        u64::try_from(sql_page(&sql, ROLE_PAGE, ROLE_COUNT).1).unwrap()
    );
    g.bench_function("userdir/role_eq_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.bench_function("sqlite/role_eq_page20", |b| {
        b.iter(|| black_box(sql_page(&sql, ROLE_PAGE, ROLE_COUNT)));
    });

    let s = Search::filter(r#"name.familyName co "son""#)
        .unwrap()
        .limit(20);
    let ours = dir.search(&s).unwrap();
    assert_eq!(
        ours.total,
        u64::try_from(sql_page(&sql, CO_PAGE, CO_COUNT).1).unwrap()
    );
    eprintln!("name.familyName co \"son\": {} matches", ours.total);
    g.bench_function("userdir/full_scan_familyName_co_son_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.bench_function("sqlite/full_scan_familyName_co_son_page20", |b| {
        b.iter(|| black_box(sql_page(&sql, CO_PAGE, CO_COUNT)));
    });

    // The same scan, first page by username (caseless; SQLite walks its NOCASE index).
    let s = Search::filter(r#"name.familyName co "son""#)
        .unwrap()
        .sort(SortField::username())
        .limit(20);
    let ours: Vec<Vec<u8>> = dir
        .search(&s)
        .unwrap()
        .users
        .iter()
        .map(|u| u.id.as_bytes().to_vec())
        .collect();
    let theirs: Vec<Vec<u8>> = sql_page(&sql, CO_SORTED_PAGE, CO_COUNT)
        .0
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(ours, theirs);
    g.bench_function(
        "userdir/full_scan_familyName_co_son_by_username_page20",
        |b| {
            b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
        },
    );
    g.bench_function(
        "sqlite/full_scan_familyName_co_son_by_username_page20",
        |b| {
            b.iter(|| black_box(sql_page(&sql, CO_SORTED_PAGE, CO_COUNT)));
        },
    );

    // Issue 18: the listings an admin screen or a SCIM client asks for first, each a page of
    // 20 and the total, beside the same query in SQLite (its NOCASE username index, its
    // (role, user_id) primary key).
    let same = |s: &Search, page: &str, count: &str| {
        let ours = dir.search(s).unwrap();
        let theirs = sql_page(&sql, page, count);
        assert_eq!(ours.total, u64::try_from(theirs.1).unwrap());
        let ids: Vec<Vec<u8>> = ours
            .users
            .iter()
            .map(|u| u.id.as_bytes().to_vec())
            .collect();
        let sql_ids: Vec<Vec<u8>> = theirs.0.into_iter().map(|r| r.0).collect();
        assert_eq!(ids, sql_ids);
        eprintln!("{}: {} matches", dir.explain(s).unwrap(), ours.total);
    };
    let s = Search::all().sort(SortField::username()).limit(20);
    same(&s, BY_USERNAME_PAGE, ALL_COUNT);
    g.bench_function("userdir/all_by_username_page20_total", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.bench_function("sqlite/all_by_username_page20_total", |b| {
        b.iter(|| black_box(sql_page(&sql, BY_USERNAME_PAGE, ALL_COUNT)));
    });
    let s = Search::filter(r#"userName sw "jo""#)
        .unwrap()
        .sort(SortField::username())
        .limit(20);
    same(&s, SW_JO_SORTED_PAGE, SW_JO_COUNT);
    g.bench_function("userdir/userName_sw_jo_by_username_page20_total", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.bench_function("sqlite/userName_sw_jo_by_username_page20_total", |b| {
        b.iter(|| black_box(sql_page(&sql, SW_JO_SORTED_PAGE, SW_JO_COUNT)));
    });
    let s = Search::filter(r#"roles eq "admin""#).unwrap().limit(20);
    same(&s, ADMIN_PAGE, ADMIN_COUNT);
    g.bench_function("userdir/role_eq_admin_page20_total", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.bench_function("sqlite/role_eq_admin_page20_total", |b| {
        b.iter(|| black_box(sql_page(&sql, ADMIN_PAGE, ADMIN_COUNT)));
    });

    let s = Search::all().sort(SortField::insert_instant()).limit(20);
    g.bench_function("userdir/sort_insert_instant_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    let s = Search::all()
        .sort(SortField::insert_instant().desc())
        .limit(20);
    g.bench_function("userdir/sort_insert_instant_desc_page20", |b| {
        b.iter(|| black_box(dir.search(black_box(&s)).unwrap()));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

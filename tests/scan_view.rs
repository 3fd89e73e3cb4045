//! Full scans evaluate filters and sort keys on records read in place and keep only the rows
//! that can be on the page (a bounded selection per id range). Over a directory large enough
//! to be scanned on all cores and to prune those selections, every page must equal the same
//! slice of the whole result, whose members are exactly the users the filter matches.

mod common;

use std::collections::HashSet;

use userdir::query::{Search, SortField};
use userdir::{Directory, NewUser, User, parse_filter};
use uuid::Uuid;

const N: u128 = 17_000; // above the parallel threshold (16,384 users)

const LAST: &[&str] = &["Johnson", "Smith", "Anderson", "Lee", "Ng", "Sonnet"];

/// Users with sequential ids (the scan splits the id space between the smallest and the
/// largest id), mixed-case usernames, and fields spread over the whole record: custom data
/// and the instants come after the names and lists in the encoding.
fn populate(d: &Directory) {
    let prepared: Vec<_> = (0..N)
        .map(|i| {
            let j = usize::try_from(i).unwrap();
            let mut n = NewUser::with_username(format!(
                "{}{}",
                ["ann", "Bob", "CARL", "dora", "Émile"][j % 5],
                (j * 7919) % 10_007
            ))
            .id(Uuid::from_u128(0x0100_0000 + i))
            .last_name(LAST[j % LAST.len()])
            .insert_instant(1_600_000_000_000 + i64::try_from((j * 31) % 997).unwrap())
            .active(j % 7 != 0);
            if j % 3 == 0 {
                n = n.full_name(format!("Full {}", (j * 13) % 101));
            }
            if j % 4 == 0 {
                n = n.role("staff");
            }
            if j % 5 == 0 {
                n = n.data("level", i64::try_from(j % 9).unwrap());
            }
            if j % 2 == 0 {
                n.last_login_instant = Some(1_700_000_000_000 + i64::try_from(j % 50).unwrap());
            }
            d.prepare(n).unwrap()
        })
        .collect();
    d.write(|tx| {
        for p in prepared {
            tx.create(p)?;
        }
        Ok(())
    })
    .unwrap();
}

fn ids(us: &[User]) -> Vec<Uuid> {
    us.iter().map(|u| u.id).collect()
}

#[test]
fn pages_of_pruned_parallel_scans_equal_slices_of_the_whole_result() {
    let (d, _) = common::dir();
    populate(&d);
    let all = d.search(&Search::all().limit(usize::MAX)).unwrap().users;
    assert_eq!(all.len() as u128, N);
    let filters = [
        r#"name.familyName co "son""#,
        r#"userName co "a""#,
        r#"data.level gt 4 or roles eq "staff""#,
        r#"lastLogin pr and name.familyName ew "n""#,
    ];
    let sorts: Vec<Vec<SortField>> = vec![
        vec![],
        vec![SortField::username()],
        vec![
            SortField::full_name().missing_first(),
            SortField::username(),
        ],
        vec![SortField::last_login().desc()],
        vec![SortField::insert_instant(), SortField::email()],
    ];
    for text in filters {
        let filter = parse_filter(text).unwrap();
        let expected: HashSet<Uuid> = all
            .iter()
            .filter(|u| filter.matches(u))
            .map(|u| u.id)
            .collect();
        assert!(expected.len() > 100, "{text}: {} matches", expected.len());
        for sort in &sorts {
            let base = sort
                .iter()
                .fold(Search::filter(text).unwrap(), |s, f| s.sort(*f));
            // The whole result: no pruning (the page holds every match).
            let whole = d.search(&base.clone().limit(usize::MAX)).unwrap();
            let got: HashSet<Uuid> = ids(&whole.users).into_iter().collect();
            assert_eq!(got, expected, "{text} {sort:?}");
            assert_eq!(whole.users.len(), expected.len());
            assert_eq!(whole.total, expected.len() as u64);
            if sort.is_empty() {
                assert!(whole.users.windows(2).all(|w| w[0].id < w[1].id));
            }
            let whole = ids(&whole.users);
            // A limit of zero counts without keeping rows.
            let p = d.search(&base.clone().limit(0)).unwrap();
            assert!(p.users.is_empty() && p.next.is_none());
            assert_eq!(p.total, whole.len() as u64);
            // Offset pages (pruned to offset + limit rows per range).
            for (offset, limit) in [(0, 1), (0, 20), (37, 5), (990, 25)] {
                let p = d.search(&base.clone().offset(offset).limit(limit)).unwrap();
                let end = (offset + limit).min(whole.len());
                assert_eq!(
                    ids(&p.users),
                    whole[offset..end],
                    "{text} {sort:?} {offset}+{limit}"
                );
                assert_eq!(p.total, whole.len() as u64);
                assert_eq!(p.next.is_some(), end < whole.len());
            }
            // Cursor pages: the first pages after each cursor, then a jump deep in.
            let mut s = base.clone().limit(33);
            let mut seen = Vec::new();
            for _ in 0..4 {
                let p = d.search(&s).unwrap();
                assert_eq!(p.total, whole.len() as u64);
                seen.extend(ids(&p.users));
                match p.next_search() {
                    Some(next) => s = next,
                    None => break,
                }
            }
            assert_eq!(seen, whole[..seen.len()], "{text} {sort:?} (cursor pages)");
            let deep = whole.len() / 2;
            let p = d.search(&base.clone().offset(deep).limit(1)).unwrap();
            let after = d
                .search(&base.clone().limit(10).after(p.next.clone().unwrap()))
                .unwrap();
            let end = (deep + 11).min(whole.len());
            assert_eq!(
                ids(&after.users),
                whole[deep + 1..end],
                "{text} {sort:?} (deep cursor)"
            );
        }
    }
}

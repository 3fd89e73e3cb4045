//! Full scans of large directories run on all cores: the result must equal a sequential
//! evaluation of the same filter, in the same order, with the same total.

mod common;

use userdir::{NewUser, Search, SortField, parse_filter};

#[test]
fn parallel_full_scan_equals_sequential_evaluation() {
    let (d, _) = common::dir();
    let n = 20_000; // above the parallel threshold
    let prepared: Vec<_> = (0..n)
        .map(|i| {
            d.prepare(
                NewUser::with_username(format!("user{i}"))
                    .last_name(["Johnson", "Smith", "Anderson", "Lee"][i % 4])
                    .active(i % 7 != 0),
            )
            .unwrap()
        })
        .collect();
    d.write(|tx| {
        for p in prepared {
            tx.create(p)?;
        }
        Ok(())
    })
    .unwrap();
    for text in [
        r#"name.familyName co "son""#,
        "active eq false",
        r#"name.familyName ew "th" or active eq false"#,
    ] {
        let filter = parse_filter(text).unwrap();
        let mut expected = Vec::new();
        d.read(|tx| {
            let all = tx.search(&Search::all().limit(usize::MAX))?;
            expected = all
                .users
                .into_iter()
                .filter(|u| filter.matches(u))
                .map(|u| u.id)
                .collect::<Vec<_>>();
            Ok(())
        })
        .unwrap();
        let page = d
            .search(&Search::filter(text).unwrap().limit(usize::MAX))
            .unwrap();
        let got: Vec<_> = page.users.iter().map(|u| u.id).collect();
        assert_eq!(got, expected, "{text}");
        assert_eq!(page.total, expected.len() as u64);
        // Sorted and paged by cursor: every match exactly once.
        let mut seen = Vec::new();
        let mut s = Search::filter(text)
            .unwrap()
            .sort(SortField::username().desc())
            .limit(4999);
        loop {
            let p = d.search(&s).unwrap();
            seen.extend(p.users.iter().map(|u| u.id));
            match p.next_search() {
                Some(next) => s = next,
                None => break,
            }
        }
        seen.sort();
        let mut exp = expected.clone();
        exp.sort();
        assert_eq!(seen, exp, "{text} (cursor pages)");
    }
}

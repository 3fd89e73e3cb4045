//! Search: SCIM 2.0 filters, planned over the indexes, sorted and paged.
//!
//! ```
//! # use userdir::{Argon2Params, Directory, NewUser};
//! use userdir::query::{Search, SortField};
//! # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
//! dir.create(NewUser::with_username("Johnny123").email("john@example.com").role("admin"))?;
//! let page = dir.search(&Search::filter(r#"userName sw "JO" and roles eq "admin""#)?
//!     .sort(SortField::username().desc()).limit(20))?;
//! assert_eq!(page.total, 1);
//! assert_eq!(dir.explain(&Search::filter(r#"userName eq "johnny123""#)?)?.to_string(),
//!            r#"LoginKeyEq(userName = "johnny123")"#);
//! # Ok::<(), userdir::Error>(())
//! ```
//!
//! # Filter language
//! RFC 7644 §3.4.2.2: `eq ne co sw ew pr gt ge lt le`, `and` (binds tighter than `or`), `or`,
//! `not (...)`, parentheses, JSON literals (`"strings"` with escapes, numbers, `true`, `false`,
//! `null`) and value paths such as `emails[type eq "work"]`. Keywords, operators and attribute
//! names are case-insensitive; the core schema prefix
//! `urn:ietf:params:scim:schemas:core:2.0:User:` may precede an attribute. An unknown attribute
//! is a parse error ([`Error::InvalidFilter`](crate::Error::InvalidFilter) with the byte
//! position and what was expected), as is an ordering or substring operator with a boolean or
//! `null` literal, or anything but `eq`/`ne`/`pr` on a boolean attribute.
//!
//! # Attribute mapping
//! | SCIM attribute | [`User`](crate::User) field | comparison |
//! |---|---|---|
//! | `id` | `id` | `eq`: as a UUID (any case); others: the lowercase hyphenated text |
//! | `userName` | `username` | caseless (compatibility caseless keys) |
//! | `emails`, `emails.value`, `email`, `emails.display` | `email` | caseless |
//! | `emails.type` | `"work"` when the user has an email | exact |
//! | `emails.primary` | `true` when the user has an email | boolean |
//! | `externalId` | `external_id` | exact |
//! | `active`, `verified` | `active`, `verified` | boolean |
//! | `name.givenName`, `name.middleName`, `name.familyName` | `first_name`, `middle_name`, `last_name` | exact |
//! | `name.formatted`, `displayName` | `full_name` | exact |
//! | `nickName` | `nick_name` | exact |
//! | `roles`, `role`, `roles.value`, `roles.display` | `roles` (any role) | exact |
//! | `phoneNumbers`, `phoneNumbers.value` (`type` `"mobile"`, `primary` true) | `mobile_phone` | exact |
//! | `preferredLanguage` | `preferred_languages` (any) | exact |
//! | `timezone`, `birthDate`, `imageUrl` / `photos.value` | `timezone`, `birth_date`, `image_url` | exact (birth dates compare as `YYYY-MM-DD` text) |
//! | `meta.created`, `meta.lastModified`, `lastLogin`, `expiry` | `insert_instant`, `last_update_instant`, `last_login_instant`, `expiry` | numbers are ms since the epoch; strings are RFC 3339 date-times or `YYYY-MM-DD` |
//! | `meta.version` | `version` | number |
//! | `data.<key>[.<key>...]` | `data` (keys case-sensitive, nested objects by `.`) | exact; an array matches when any element does |
//!
//! "Exact" strings compare by code point, case-sensitively; "caseless" compares the Unicode
//! compatibility caseless keys of both sides (see [`identity`](crate::identity)), for `co`,
//! `sw`, `ew` and the orderings too. `pr` is true for a non-empty value. `eq null` is true
//! when the attribute has no value, `ne null` when it has one, and `ne x` is exactly
//! `not (eq x)` (so a user without the attribute matches `ne`). A literal of the wrong type
//! (a number against a name, a string against `active`) matches nothing.
//!
//! # Plans
//! The planner ([`Directory::explain`](crate::Directory::explain)) picks, among the conjuncts
//! of the top-level `and`, the best index access, in this order: id list ([`Search::ids`] or
//! `id eq`), `userName`/`emails` equality (the login index), `externalId` equality, `userName`/
//! `emails` prefix (`sw`, a range scan of caseless keys), role equality, insert-instant range
//! (`meta.created gt/ge/lt/le/eq`, several intersected). An `or` whose every branch has an
//! access becomes a union. Whatever the access does not decide is evaluated on each candidate
//! (the plan's residual); without any access, every user is decoded and the filter evaluated
//! ([`Plan::FullScan`]). A search sorted by insert instant alone, without a residual, reads its
//! page straight from the insert-instant index.
//!
//! # Pages
//! Results are ordered by the [`SortField`]s given (by id without any; ties always broken by
//! id), then `offset` rows are skipped and `limit` (default 20) returned; `total` counts every
//! match. [`Page::next`] is an opaque [`Cursor`] naming the last row; a search
//! [`after`](Search::after) it starts strictly after that row, so users present throughout
//! are neither skipped nor repeated while others are inserted or deleted between pages.

mod eval;
mod parse;
mod plan;
mod sort;

pub use parse::{Attr, CompareOp, Field, Filter, Multi, Sub, Value, parse_filter};
pub use parse::{MAX_FILTER_DEPTH, MAX_FILTER_TERMS};
pub use plan::{DEFAULT_LIMIT, LoginAttr, Page, Plan, Search};
pub use sort::{Cursor, SortField};

#[cfg(test)]
pub(crate) use eval::Fields;
pub(crate) use eval::{Elem, Pred, parse_instant};
pub(crate) use parse::{parse_element_filter, resolve_attr};

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
//! Every attribute of the [attribute table](crate::model) can be filtered on, by its SCIM name
//! (any case, with or without its schema URN):
//!
//! | SCIM attribute | [`User`](crate::User) field | comparison |
//! |---|---|---|
//! | `id` | `id` | `eq`: as a UUID (any case); others: the lowercase hyphenated text |
//! | `userName` | `username` | caseless (compatibility caseless keys) |
//! | `email` | `email`, the login email | caseless |
//! | `externalId` | `external_id` | exact |
//! | `name.givenName`, `name.middleName`, `name.familyName`, `name.formatted`, `name.honorificPrefix`, `name.honorificSuffix` | `first_name`, `middle_name`, `last_name`, `full_name`, `honorific_prefix`, `honorific_suffix` | caseless |
//! | `displayName`, `nickName`, `profileUrl`, `title`, `userType`, `locale`, `timezone` | the field of that name | caseless |
//! | `preferredLanguage` | `preferred_languages` (any) | caseless |
//! | `active`, `verified`, `passwordChangeRequired` | the flags | boolean |
//! | `emails`, `phoneNumbers`, `ims`, `photos`, `x509Certificates`, `entitlements` (`.value`, `.type`, `.primary`, `.display`; the attribute alone means `.value`) | the lists (any element) | caseless; `x509Certificates` exact |
//! | `addresses` (`.formatted`, `.streetAddress`, `.locality`, `.region`, `.postalCode`, `.country`, `.type`, `.primary`; alone: `.formatted`) | `addresses` (any element) | caseless |
//! | `roles`, `role`, `roles.value`, `roles.display` | `roles` (any role) | caseless (RFC 7643 `caseExact=false`; the role index holds caseless keys) |
//! | enterprise `employeeNumber`, `costCenter`, `organization`, `division`, `department`, `manager` (`manager.value`) | the field of that name | caseless |
//! | `birthDate` | `birth_date` | exact (`YYYY-MM-DD` text) |
//! | `meta.created`, `meta.lastModified`, `lastLoginInstant` (`lastLogin`), `passwordLastUpdateInstant`, `expiry` | the instants | numbers are ms since the epoch; strings are RFC 3339 date-times or `YYYY-MM-DD` |
//! | `meta.version` | `version` | number |
//! | `data.<key>[.<key>...]` | `data` (keys case-sensitive, nested objects by `.`) | exact; an array matches when any element does |
//!
//! Value paths select elements of a multi-valued attribute: `emails[type eq "work" and
//! primary eq true]`, `addresses[type eq "home" and locality eq "Paris"]`.
//! "Exact" strings compare by code point, case-sensitively; "caseless" (RFC 7643
//! `caseExact=false`) compares the Unicode compatibility caseless keys of both sides (see
//! [`identity`](crate::identity)), for `co`, `sw`, `ew` and the orderings too. `pr` is true
//! for a non-empty value. `eq null` is true when the attribute has no value, `ne null` when it
//! has one, and `ne x` is exactly `not (eq x)` (so a user without the attribute matches `ne`).
//! A literal of the wrong type (a number against a name, a string against `active`) matches
//! nothing. The password is never a filter attribute.
//!
//! # Plans
//! The planner ([`Directory::explain`](crate::Directory::explain)) picks, among the conjuncts
//! of the top-level `and`, the best index access, in this order: id list ([`Search::ids`] or
//! `id eq`), `userName`/`email` equality (the login index), `externalId` and `emails`
//! equality (the secondary email index: every element of `emails`), `userName`/`email`/
//! `emails` prefix (`sw`, a range scan of caseless keys), role equality, insert-instant range
//! (`meta.created gt/ge/lt/le/eq`, several intersected), then `emails co` and
//! `emails[type eq ...]` (every email key read, no record). An `or` whose every branch has an
//! access becomes a union. Whatever the access does not decide is evaluated on each candidate
//! (the plan's residual); without any access, every user is decoded and the filter evaluated
//! ([`Plan::FullScan`]).
//!
//! Some searches read their page straight from an index in their order and their total
//! from a counter or a count of index keys, without decoding or sorting the matches: sorted by
//! `userName` or `email` alone, with no filter or an `sw` on that same attribute
//! ([`Plan::LoginKeyOrdered`]: one range walk, either direction, that stops after the page;
//! users without the attribute come after the keys, so a page that reaches them is served by
//! the general path); `roles eq` alone without a sort ([`Plan::RoleOrdered`]: the role's
//! members in id order and its member counter); sorted by insert instant alone without a
//! residual ([`Plan::InsertRange`], ordered).
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

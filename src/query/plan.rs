//! Planning and running a [`Search`]: index choice, evaluation, sort, offset and cursor pages.

use std::fmt;
use std::ops::Bound;

use uuid::Uuid;

use super::eval::{Fields, Pred, parse_instant};
use super::parse::{Attr, CompareOp, Field, Filter, Multi, Sub, Value, parse_filter};
use super::prefilter::Prefilter;
use super::sort::{Cursor, Key, SortBy, SortField, cmp_rows};
use crate::directory::{Directory, ReadTx};
use crate::error::{Error, Result};
use crate::identity::{caseless_key, role_key};
use crate::store::record::{Need, RecordView};
use crate::store::{EmailMatch, LoginKind, ReadTxn, Reader, Snapshot, codec};
use crate::user::{UnixMillis, User};

/// The default page size (FusionAuth's `numberOfResults`).
pub const DEFAULT_LIMIT: usize = 20;

/// What to search for, in which order, and which page.
///
/// # Examples
/// ```
/// # use userdir::{Argon2Params, Directory, NewUser};
/// use userdir::query::{Search, SortField};
/// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
/// # for n in ["John", "joanna", "Jim", "ann"] { dir.create(NewUser::with_username(n))?; }
/// let page = dir.search(
///     &Search::filter(r#"userName sw "jo" and active eq true"#)?
///         .sort(SortField::username().desc())
///         .limit(20),
/// )?;
/// let names: Vec<_> = page.users.iter().map(|u| u.username.clone().unwrap()).collect();
/// assert_eq!(names, ["John", "joanna"]);
/// assert_eq!(page.total, 2);
/// # Ok::<(), userdir::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Search {
    ids: Option<Vec<Uuid>>,
    filter: Option<Filter>,
    sort: Vec<SortField>,
    limit: usize,
    offset: usize,
    after: Option<Cursor>,
    no_index: bool,
}

impl Search {
    fn with(ids: Option<Vec<Uuid>>, filter: Option<Filter>) -> Self {
        Search {
            ids,
            filter,
            sort: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
            after: None,
            no_index: false,
        }
    }
    /// Every user.
    pub fn all() -> Self {
        Search::with(None, None)
    }
    /// The users matching a SCIM filter.
    ///
    /// # Errors
    /// [`Error::InvalidFilter`] with the position and what was expected.
    pub fn filter(s: &str) -> Result<Self> {
        Ok(Search::with(None, Some(parse_filter(s)?)))
    }
    /// The users with these ids (unknown ids are skipped).
    pub fn ids(ids: Vec<Uuid>) -> Self {
        Search::with(Some(ids), None)
    }
    /// The users matching a parsed filter.
    pub fn with_filter(f: Filter) -> Self {
        Search::with(None, Some(f))
    }
    /// Also requires `f` (combined with `and`).
    pub fn and_filter(mut self, f: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(old) => old.and(f),
            None => f,
        });
        self
    }
    /// Adds a sort key (the first call gives the primary key). Without any, users come in
    /// id order.
    pub fn sort(mut self, s: SortField) -> Self {
        self.sort.push(s);
        self
    }
    /// Page size (default [`DEFAULT_LIMIT`]).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }
    /// Rows to skip (after the cursor, if any).
    pub fn offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
    }
    /// Starts strictly after the row a previous page's [`Page::next`] names.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }
    /// The filter, if any.
    #[must_use]
    pub fn filter_ref(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }
    /// Runs the search without any index (every user is evaluated, the matches sorted in
    /// memory): tests compare the planner's index paths with it. Not part of the API (feature
    /// `__test-hooks`).
    #[cfg(feature = "__test-hooks")]
    #[doc(hidden)]
    pub fn without_indexes(mut self) -> Self {
        self.no_index = true;
        self
    }
}

/// One page of results.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Page {
    /// The users of this page, in order.
    pub users: Vec<User>,
    /// How many users match the search (all pages).
    pub total: u64,
    /// Where the next page starts, when there are more rows after this page.
    pub next: Option<Cursor>,
    #[serde(skip)]
    search: Search,
}

impl Page {
    /// The search for the next page (same filter, order and limit, after [`Page::next`]).
    #[must_use]
    pub fn next_search(&self) -> Option<Search> {
        self.next
            .clone()
            .map(|c| self.search.clone().offset(0).after(c))
    }
}

/// Which of the two kinds of login key an index access reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginAttr {
    /// `userName`.
    UserName,
    /// `emails.value`.
    Email,
}

impl LoginAttr {
    fn kind(self) -> LoginKind {
        match self {
            LoginAttr::UserName => LoginKind::Username,
            LoginAttr::Email => LoginKind::Email,
        }
    }
}

/// How a search is run: the index access and the part of the filter evaluated on each
/// candidate (`residual`). See [`Directory::explain`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Plan {
    /// The given ids (`Search::ids`, `id eq "..."`).
    IdList {
        /// The ids, sorted, without duplicates.
        ids: Vec<Uuid>,
        /// Evaluated on each user.
        residual: Option<Filter>,
    },
    /// One caseless login key (`userName eq`, `emails eq`).
    LoginKeyEq {
        /// Username or email.
        attr: LoginAttr,
        /// The caseless key.
        key: String,
        /// Evaluated on each candidate.
        residual: Option<Filter>,
    },
    /// A range of caseless login keys (`userName sw`, `emails sw`).
    LoginKeyPrefix {
        /// Username or email.
        attr: LoginAttr,
        /// The caseless key prefix.
        prefix: String,
        /// Evaluated on each candidate.
        residual: Option<Filter>,
    },
    /// The external id index (`externalId eq`).
    ExternalIdEq {
        /// The external id.
        external_id: String,
        /// Evaluated on each candidate.
        residual: Option<Filter>,
    },
    /// The login keys walked in the order of the sort (`sortBy` userName or email, with no
    /// filter or an `sw` filter on the same attribute): the walk stops after the page, and the
    /// total is a counter (no filter) or a count of the keys in the prefix range.
    LoginKeyOrdered {
        /// Username or email.
        attr: LoginAttr,
        /// The caseless key prefix (empty: every key).
        prefix: String,
        /// Descending.
        desc: bool,
    },
    /// The role index in id order (`roles eq` alone, no sort): the page is read from the
    /// index and the total from the role's member counter.
    RoleOrdered {
        /// The role key.
        role: String,
    },
    /// The secondary email index (`emails eq`, `emails sw`, `emails co`, also inside
    /// `emails[value ...]`): every element of `emails`, not only the login email.
    EmailValue {
        /// `Eq`, `Sw` or `Co`.
        op: CompareOp,
        /// The caseless key compared with the element values' keys.
        key: String,
        /// Evaluated on each candidate.
        residual: Option<Filter>,
    },
    /// The secondary email index read for the elements' types (`emails[type eq "home"]`):
    /// a superset, the value path is evaluated on each candidate.
    EmailType {
        /// The caseless type.
        kind: String,
        /// Evaluated on each candidate.
        residual: Option<Filter>,
    },
    /// The role index (`roles eq`).
    RoleEq {
        /// The role.
        role: String,
        /// Evaluated on each candidate.
        residual: Option<Filter>,
    },
    /// A range of the insert-instant index (`meta.created gt ...`, or a sort by insert instant).
    InsertRange {
        /// Lower bound, ms.
        from: Bound<UnixMillis>,
        /// Upper bound, ms.
        to: Bound<UnixMillis>,
        /// Whether the index order serves the sort (the page is read directly).
        ordered: bool,
        /// Evaluated on each candidate.
        residual: Option<Filter>,
    },
    /// The union of several accesses (an `or` whose every branch has an index).
    Union {
        /// One access per branch (their own residuals are folded into `residual`).
        arms: Vec<Plan>,
        /// Evaluated on each candidate.
        residual: Option<Filter>,
    },
    /// Every user is decoded and `residual` evaluated.
    FullScan {
        /// The filter, if any.
        residual: Option<Filter>,
    },
}

impl Plan {
    /// The part of the filter evaluated on each candidate.
    #[must_use]
    pub fn residual(&self) -> Option<&Filter> {
        match self {
            Plan::IdList { residual, .. }
            | Plan::LoginKeyEq { residual, .. }
            | Plan::LoginKeyPrefix { residual, .. }
            | Plan::ExternalIdEq { residual, .. }
            | Plan::RoleEq { residual, .. }
            | Plan::EmailValue { residual, .. }
            | Plan::EmailType { residual, .. }
            | Plan::InsertRange { residual, .. }
            | Plan::Union { residual, .. }
            | Plan::FullScan { residual } => residual.as_ref(),
            Plan::LoginKeyOrdered { .. } | Plan::RoleOrdered { .. } => None,
        }
    }

    fn set_residual(&mut self, r: Option<Filter>) {
        match self {
            Plan::IdList { residual, .. }
            | Plan::LoginKeyEq { residual, .. }
            | Plan::LoginKeyPrefix { residual, .. }
            | Plan::ExternalIdEq { residual, .. }
            | Plan::RoleEq { residual, .. }
            | Plan::EmailValue { residual, .. }
            | Plan::EmailType { residual, .. }
            | Plan::InsertRange { residual, .. }
            | Plan::Union { residual, .. }
            | Plan::FullScan { residual } => *residual = r,
            Plan::LoginKeyOrdered { .. } | Plan::RoleOrdered { .. } => {}
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Plan::IdList { .. } => 0,
            Plan::LoginKeyEq { .. } | Plan::LoginKeyOrdered { .. } | Plan::RoleOrdered { .. } => 1,
            Plan::ExternalIdEq { .. }
            | Plan::EmailValue {
                op: CompareOp::Eq, ..
            } => 2,
            Plan::LoginKeyPrefix { .. }
            | Plan::EmailValue {
                op: CompareOp::Sw, ..
            } => 3,
            Plan::RoleEq { .. } => 4,
            Plan::InsertRange { .. } => 5,
            Plan::Union { .. } | Plan::EmailValue { .. } | Plan::EmailType { .. } => 6,
            Plan::FullScan { .. } => 7,
        }
    }

    fn write_access(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attr = |a: &LoginAttr| match a {
            LoginAttr::UserName => "userName",
            LoginAttr::Email => "email",
        };
        let bound = |b: &Bound<UnixMillis>, lo: bool| match (b, lo) {
            (Bound::Included(x), true) => format!("[{x}"),
            (Bound::Excluded(x), true) => format!("({x}"),
            (Bound::Unbounded, true) => "(-inf".to_owned(),
            (Bound::Included(x), false) => format!("{x}]"),
            (Bound::Excluded(x), false) => format!("{x})"),
            (Bound::Unbounded, false) => "+inf)".to_owned(),
        };
        match self {
            Plan::IdList { ids, .. } => write!(f, "IdList({} ids)", ids.len()),
            Plan::LoginKeyEq { attr: a, key, .. } => {
                write!(f, "LoginKeyEq({} = {key:?})", attr(a))
            }
            Plan::LoginKeyPrefix {
                attr: a, prefix, ..
            } => {
                write!(f, "LoginKeyPrefix({} sw {prefix:?})", attr(a))
            }
            Plan::LoginKeyOrdered {
                attr: a,
                prefix,
                desc,
            } => {
                write!(f, "LoginKeyOrdered({}", attr(a))?;
                if !prefix.is_empty() {
                    write!(f, " sw {prefix:?}")?;
                }
                write!(f, ", {})", if *desc { "desc" } else { "asc" })
            }
            Plan::RoleOrdered { role } => write!(f, "RoleOrdered({role:?})"),
            Plan::EmailValue { op, key, .. } => write!(f, "EmailValue(emails {op} {key:?})"),
            Plan::EmailType { kind, .. } => write!(f, "EmailType({kind:?})"),
            Plan::ExternalIdEq { external_id, .. } => write!(f, "ExternalIdEq({external_id:?})"),
            Plan::RoleEq { role, .. } => write!(f, "RoleEq({role:?})"),
            Plan::InsertRange {
                from, to, ordered, ..
            } => write!(
                f,
                "InsertRange({}, {}{})",
                bound(from, true),
                bound(to, false),
                if *ordered { ", ordered" } else { "" }
            ),
            Plan::Union { arms, .. } => {
                f.write_str("Union(")?;
                for (i, a) in arms.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    a.write_access(f)?;
                }
                f.write_str(")")
            }
            Plan::FullScan { .. } => f.write_str("FullScan"),
        }
    }
}

impl fmt::Display for Plan {
    /// `Access(...)`, then ` + filter <residual>` when a residual filter remains.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_access(f)?;
        if let Some(r) = self.residual() {
            write!(f, " + filter {r}")?;
        }
        Ok(())
    }
}

fn conjuncts<'a>(f: &'a Filter, out: &mut Vec<&'a Filter>) {
    match f {
        Filter::And(a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        other => out.push(other),
    }
}

fn disjuncts<'a>(f: &'a Filter, out: &mut Vec<&'a Filter>) {
    match f {
        Filter::Or(a, b) => {
            disjuncts(a, out);
            disjuncts(b, out);
        }
        other => out.push(other),
    }
}

fn and_all(fs: Vec<Filter>) -> Option<Filter> {
    fs.into_iter().reduce(Filter::and)
}

fn login(attr: LoginAttr, op: CompareOp, s: &str) -> Option<Plan> {
    match op {
        CompareOp::Eq => Some(Plan::LoginKeyEq {
            attr,
            key: caseless_key(s),
            residual: None,
        }),
        CompareOp::Sw => Some(Plan::LoginKeyPrefix {
            attr,
            prefix: caseless_key(s),
            residual: None,
        }),
        _ => None,
    }
}

fn instant_of(v: &Value) -> Option<UnixMillis> {
    match v {
        Value::Int(i) => Some(*i),
        Value::String(s) => parse_instant(s),
        _ => None,
    }
}

/// An index access that yields a superset of the users matching `c`, and whether it yields
/// exactly them.
fn access(c: &Filter) -> Option<(Plan, bool)> {
    match c {
        Filter::Compare {
            attr,
            op,
            value: Value::String(s),
        } if matches!(
            attr,
            Attr::Id
                | Attr::Field(Field::USER_NAME | Field::EMAIL | Field::EXTERNAL_ID)
                | Attr::Multi(Multi::ROLES | Multi::EMAILS, Sub::Value)
        ) =>
        {
            let p = match (attr, op) {
                (Attr::Id, CompareOp::Eq) => Plan::IdList {
                    ids: Uuid::parse_str(s).ok().into_iter().collect(),
                    residual: None,
                },
                (Attr::Field(Field::USER_NAME), _) => login(LoginAttr::UserName, *op, s)?,
                (Attr::Field(Field::EMAIL), _) => login(LoginAttr::Email, *op, s)?,
                (Attr::Field(Field::EXTERNAL_ID), CompareOp::Eq) => Plan::ExternalIdEq {
                    external_id: s.clone(),
                    residual: None,
                },
                (Attr::Multi(Multi::EMAILS, _), CompareOp::Eq | CompareOp::Sw | CompareOp::Co) => {
                    Plan::EmailValue {
                        op: *op,
                        key: caseless_key(s),
                        residual: None,
                    }
                }
                (Attr::Multi(Multi::ROLES, _), CompareOp::Eq) => Plan::RoleEq {
                    role: role_key(s),
                    residual: None,
                },
                _ => return None,
            };
            Some((p, true))
        }
        Filter::Compare {
            attr: Attr::Field(Field::CREATED),
            op,
            value,
        } => {
            let t = instant_of(value)?;
            let (from, to) = match op {
                CompareOp::Eq => (Bound::Included(t), Bound::Included(t)),
                CompareOp::Gt => (Bound::Excluded(t), Bound::Unbounded),
                CompareOp::Ge => (Bound::Included(t), Bound::Unbounded),
                CompareOp::Lt => (Bound::Unbounded, Bound::Excluded(t)),
                CompareOp::Le => (Bound::Unbounded, Bound::Included(t)),
                _ => return None,
            };
            Some((
                Plan::InsertRange {
                    from,
                    to,
                    ordered: false,
                    residual: None,
                },
                true,
            ))
        }
        Filter::ValuePath { attr, filter } => {
            let mut cs = Vec::new();
            conjuncts(filter, &mut cs);
            let single = cs.len() == 1;
            cs.iter()
                .filter_map(|c| match (*attr, c) {
                    (
                        Multi::ROLES,
                        Filter::Compare {
                            attr: Attr::Element(Sub::Value),
                            op: CompareOp::Eq,
                            value: Value::String(s),
                        },
                    ) => Some((
                        Plan::RoleEq {
                            role: role_key(s),
                            residual: None,
                        },
                        single,
                    )),
                    (
                        Multi::EMAILS,
                        Filter::Compare {
                            attr: Attr::Element(Sub::Value),
                            op: op @ (CompareOp::Eq | CompareOp::Sw | CompareOp::Co),
                            value: Value::String(s),
                        },
                    ) => Some((
                        Plan::EmailValue {
                            op: *op,
                            key: caseless_key(s),
                            residual: None,
                        },
                        single,
                    )),
                    (
                        Multi::EMAILS,
                        Filter::Compare {
                            attr: Attr::Element(Sub::Type),
                            op: CompareOp::Eq,
                            value: Value::String(s),
                        },
                    ) => Some((
                        Plan::EmailType {
                            kind: caseless_key(s),
                            residual: None,
                        },
                        false,
                    )),
                    _ => None,
                })
                .min_by_key(|(p, _)| p.rank())
        }
        Filter::Or(..) => {
            let mut ds = Vec::new();
            disjuncts(c, &mut ds);
            let mut arms = Vec::new();
            let mut exact = true;
            for d in ds {
                let (p, e) = best(d)?;
                exact &= e;
                arms.push(p);
            }
            Some((
                Plan::Union {
                    arms,
                    residual: None,
                },
                exact,
            ))
        }
        _ => None,
    }
}

/// The best access for a whole filter (used for `or` branches): exact when the branch is one
/// exactly indexed conjunct.
fn best(f: &Filter) -> Option<(Plan, bool)> {
    let mut cs = Vec::new();
    conjuncts(f, &mut cs);
    let n = cs.len();
    cs.into_iter()
        .filter_map(access)
        .min_by_key(|(p, _)| p.rank())
        .map(|(p, e)| (p, e && n == 1))
}

fn tighter_lo(a: Bound<UnixMillis>, b: Bound<UnixMillis>) -> Bound<UnixMillis> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.max(y)),
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.max(y)),
        (Bound::Included(i), Bound::Excluded(e)) | (Bound::Excluded(e), Bound::Included(i)) => {
            if i > e {
                Bound::Included(i)
            } else {
                Bound::Excluded(e)
            }
        }
    }
}

fn tighter_hi(a: Bound<UnixMillis>, b: Bound<UnixMillis>) -> Bound<UnixMillis> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.min(y)),
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.min(y)),
        (Bound::Included(i), Bound::Excluded(e)) | (Bound::Excluded(e), Bound::Included(i)) => {
            if i < e {
                Bound::Included(i)
            } else {
                Bound::Excluded(e)
            }
        }
    }
}

fn sorted_by_insert(s: &Search) -> bool {
    matches!(s.sort.as_slice(), [f] if f.by == SortBy::InsertInstant)
}

/// Chooses the plan of a search: an index walk that serves the page in order when there is
/// one, else [`base_plan`].
pub(crate) fn plan(s: &Search) -> Plan {
    ordered_plan(s).unwrap_or_else(|| base_plan(s))
}

/// A plan that reads the page straight from an index in the search's order, when one exists:
/// a sort by userName or email (or `emails`, whose primary value is the login email), with no
/// filter or an `sw` filter on the same attribute; or `roles eq` alone without a sort.
fn ordered_plan(s: &Search) -> Option<Plan> {
    if s.no_index || s.ids.is_some() {
        return None;
    }
    match s.sort.as_slice() {
        [] => {
            // `roles eq "x"` alone: id order is the role index's order.
            let (p, exact) = access(s.filter.as_ref()?)?;
            match p {
                Plan::RoleEq { role, .. } if exact => Some(Plan::RoleOrdered { role }),
                _ => None,
            }
        }
        [f] => {
            let attr = match f.by {
                SortBy::Username => LoginAttr::UserName,
                SortBy::Email => LoginAttr::Email,
                // SCIM `sortBy=emails`: the primary element's value, which the directory keeps
                // equal to the login email (whose key the login index orders).
                SortBy::Attr(i) if usize::from(i) == crate::model::at::EMAILS => LoginAttr::Email,
                _ => return None,
            };
            let prefix = match &s.filter {
                None => String::new(),
                Some(flt) => match access(flt)? {
                    (
                        Plan::LoginKeyPrefix {
                            attr: a, prefix, ..
                        },
                        true,
                    ) if a == attr => prefix,
                    _ => return None,
                },
            };
            Some(Plan::LoginKeyOrdered {
                attr,
                prefix,
                desc: f.desc,
            })
        }
        _ => None,
    }
}

/// Chooses the plan of a search among the accesses that yield candidates (then evaluated,
/// sorted and paged).
pub(crate) fn base_plan(s: &Search) -> Plan {
    if s.no_index {
        return match &s.ids {
            Some(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                Plan::IdList {
                    ids,
                    residual: s.filter.clone(),
                }
            }
            None => Plan::FullScan {
                residual: s.filter.clone(),
            },
        };
    }
    if let Some(ids) = &s.ids {
        let mut ids = ids.clone();
        ids.sort_unstable();
        ids.dedup();
        return Plan::IdList {
            ids,
            residual: s.filter.clone(),
        };
    }
    let Some(f) = &s.filter else {
        if sorted_by_insert(s) {
            return Plan::InsertRange {
                from: Bound::Unbounded,
                to: Bound::Unbounded,
                ordered: true,
                residual: None,
            };
        }
        return Plan::FullScan { residual: None };
    };
    let mut cs = Vec::new();
    conjuncts(f, &mut cs);
    let accesses: Vec<Option<(Plan, bool)>> = cs.iter().map(|c| access(c)).collect();
    let chosen = accesses
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.as_ref().map(|(p, e)| (i, p, *e)))
        .min_by_key(|(_, p, _)| p.rank());
    let Some((ci, p, exact)) = chosen else {
        return Plan::FullScan {
            residual: Some(f.clone()),
        };
    };
    let mut plan = p.clone();
    let mut used = vec![false; cs.len()];
    if let Some(u) = used.get_mut(ci) {
        *u = exact;
    }
    if let Plan::InsertRange { from, to, .. } = &mut plan {
        // Intersect every exact range conjunct into the one access.
        for (i, a) in accesses.iter().enumerate() {
            if let Some((
                Plan::InsertRange {
                    from: f2, to: t2, ..
                },
                true,
            )) = a
            {
                *from = tighter_lo(*from, *f2);
                *to = tighter_hi(*to, *t2);
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
            }
        }
    }
    let residual = and_all(
        cs.iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(c, _)| (*c).clone())
            .collect(),
    );
    if let Plan::InsertRange { ordered, .. } = &mut plan {
        *ordered = residual.is_none() && sorted_by_insert(s);
    }
    plan.set_residual(residual);
    plan
}

/// Candidate ids of an access (sorted, unique), or `None` for "every user".
fn candidates(r: &Reader, p: &Plan) -> Result<Option<Vec<Uuid>>> {
    let mut ids = match p {
        Plan::FullScan { .. } => return Ok(None),
        Plan::IdList { ids, .. } => ids.clone(),
        Plan::LoginKeyEq { attr, key, .. } => r
            .login(key)?
            .filter(|owner| owner.is(attr.kind()))
            .map(|owner| owner.id)
            .into_iter()
            .collect(),
        Plan::LoginKeyPrefix { attr, prefix, .. } => {
            let mut v = Vec::new();
            r.login_prefix(prefix, attr.kind(), |id| v.push(id))?;
            v
        }
        Plan::ExternalIdEq { external_id, .. } => r.external(external_id)?.into_iter().collect(),
        Plan::EmailValue { op, key, .. } => {
            let m = match op {
                CompareOp::Eq => EmailMatch::Eq(key),
                CompareOp::Sw => EmailMatch::Prefix(key),
                _ => EmailMatch::Contains(key),
            };
            let mut v = Vec::new();
            r.email_holders(m, |id| v.push(id))?;
            v
        }
        Plan::EmailType { kind, .. } => {
            let mut v = Vec::new();
            r.email_holders(EmailMatch::Type(kind), |id| v.push(id))?;
            v
        }
        Plan::RoleEq { role, .. } | Plan::RoleOrdered { role } => r.role_members(role)?,
        Plan::LoginKeyOrdered { attr, prefix, .. } => {
            let mut v = Vec::new();
            r.login_prefix(prefix, attr.kind(), |id| v.push(id))?;
            v
        }
        Plan::InsertRange { from, to, .. } => {
            let mut v = Vec::new();
            let (lo, hi) = index_bounds(*from, *to);
            r.inserted_walk(lo, hi, false, |_, id| {
                v.push(id);
                Ok(true)
            })?;
            v
        }
        Plan::Union { arms, .. } => {
            let mut v = Vec::new();
            for a in arms {
                v.extend(candidates(r, a)?.unwrap_or_default());
            }
            v
        }
    };
    // Big-endian, so the order of the numbers is the order of the ids (and cheaper to compare).
    ids.sort_unstable_by_key(uuid::Uuid::as_u128);
    ids.dedup();
    Ok(Some(ids))
}

/// Whether `p` reads given ids (which are candidates whether or not such users exist).
fn names_ids(p: &Plan) -> bool {
    match p {
        Plan::IdList { .. } => true,
        Plan::Union { arms, .. } => arms.iter().any(names_ids),
        _ => false,
    }
}

/// A bound on the insert-instant index key.
type IndexBound = Bound<(i64, Uuid)>;

fn index_bounds(from: Bound<UnixMillis>, to: Bound<UnixMillis>) -> (IndexBound, IndexBound) {
    let lo = match from {
        Bound::Included(t) => Bound::Included((t, Uuid::nil())),
        Bound::Excluded(t) => Bound::Excluded((t, Uuid::max())),
        Bound::Unbounded => Bound::Unbounded,
    };
    let hi = match to {
        Bound::Included(t) => Bound::Included((t, Uuid::max())),
        Bound::Excluded(t) => Bound::Excluded((t, Uuid::nil())),
        Bound::Unbounded => Bound::Unbounded,
    };
    (lo, hi)
}

fn fetch(r: &Reader, ids: impl IntoIterator<Item = Uuid>) -> Result<Vec<User>> {
    let ids = ids.into_iter();
    // Users are large: growing the vector would copy them.
    let mut out = Vec::with_capacity(ids.size_hint().0);
    for id in ids {
        if let Some(u) = r.get(id)? {
            out.push(u);
        }
    }
    Ok(out)
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Runs a search on one snapshot.
pub(crate) fn run(r: &Reader, s: &Search) -> Result<Page> {
    if let Some(c) = &s.after
        && c.sort != s.sort
    {
        return Err(Error::InvalidCursor(
            "the cursor belongs to a search with another sort order".into(),
        ));
    }
    let mut plan = plan(s);
    let page = |users: Vec<User>, total: usize, next: Option<Cursor>| Page {
        users,
        total: to_u64(total),
        next,
        search: s.clone(),
    };
    let cursor_of = |u: &User| Cursor {
        sort: s.sort.clone(),
        keys: s.sort.iter().map(|f| f.key(u)).collect(),
        id: u.id,
    };

    // An index in the order of the sort: the page is read from it, the total is a counter or
    // a count of keys. `None`: the page reaches users the index does not hold (those without
    // the sort's attribute): the general path below serves it.
    let ordered = match &plan {
        Plan::LoginKeyOrdered { attr, prefix, desc } => {
            login_ordered_page(r, s, *attr, prefix, *desc)?
        }
        Plan::RoleOrdered { role } => Some(role_ordered_page(r, s, role)?),
        _ => None,
    };
    if let Some((ids, total, more)) = ordered {
        let users = fetch(r, ids)?;
        let next = if more {
            users.last().map(cursor_of)
        } else {
            None
        };
        return Ok(page(users, total, next));
    }
    if matches!(
        plan,
        Plan::LoginKeyOrdered { .. } | Plan::RoleOrdered { .. }
    ) {
        plan = base_plan(s);
    }

    // The insert-instant index serves the order: read the page directly.
    if let Plan::InsertRange {
        from,
        to,
        ordered: true,
        residual: None,
    } = &plan
    {
        let desc = s.sort.first().is_some_and(|f| f.desc);
        let (mut lo, mut hi) = index_bounds(*from, *to);
        let total = if matches!((from, to), (Bound::Unbounded, Bound::Unbounded)) {
            usize::try_from(r.count()?).unwrap_or(usize::MAX)
        } else {
            let mut n = 0usize;
            r.inserted_walk(lo, hi, false, |_, _| {
                n += 1;
                Ok(true)
            })?;
            n
        };
        if let Some(c) = &s.after {
            let t = match c.keys.first() {
                Some(Key::Int(t)) => *t,
                _ => return Err(Error::InvalidCursor("malformed sort key".into())),
            };
            let at = Bound::Excluded((t, c.id));
            if desc {
                hi = tighter(hi, at, false);
            } else {
                lo = tighter(lo, at, true);
            }
        }
        let mut ids = Vec::new();
        let mut skip = s.offset;
        let want = s.limit.saturating_add(1);
        r.inserted_walk(lo, hi, desc, |_, id| {
            if skip > 0 {
                skip -= 1;
                return Ok(true);
            }
            ids.push(id);
            Ok(ids.len() < want)
        })?;
        let more = ids.len() > s.limit;
        ids.truncate(s.limit);
        let users = fetch(r, ids)?;
        let next = if more {
            users.last().map(cursor_of)
        } else {
            None
        };
        return Ok(page(users, total, next));
    }

    let pred = plan.residual().map(Pred::compile);
    let cands = candidates(r, &plan)?;
    // Candidates are exactly the matches when nothing is left to evaluate, except for given
    // ids (also inside a union), which need not exist.
    let exact = pred.is_none() && !names_ids(&plan);

    // Exact candidates in id order: only the page is decoded.
    if exact && s.sort.is_empty() {
        let after = s.after.as_ref().map(|c| c.id);
        if let Some(ids) = cands {
            let total = ids.len();
            let start = after.map_or(0, |a| ids.partition_point(|x| *x <= a));
            let rest = ids.get(start..).unwrap_or(&[]);
            let page_ids: Vec<Uuid> = rest.iter().skip(s.offset).take(s.limit).copied().collect();
            let more = rest.len() > s.offset.saturating_add(s.limit);
            let users = fetch(r, page_ids)?;
            let next = if more {
                users.last().map(cursor_of)
            } else {
                None
            };
            return Ok(page(users, total, next));
        }
        let total = usize::try_from(r.count()?).unwrap_or(usize::MAX);
        let mut users = Vec::new();
        let mut skip = s.offset;
        let want = s.limit.saturating_add(1);
        r.for_each_record_after(after, |id, bytes| {
            if skip > 0 {
                skip -= 1;
                return Ok(true);
            }
            users.push(codec::decode(id, bytes)?);
            Ok(users.len() < want)
        })?;
        let more = users.len() > s.limit;
        users.truncate(s.limit);
        let next = if more {
            users.last().map(cursor_of)
        } else {
            None
        };
        return Ok(page(users, total, next));
    }

    // General case: evaluate every candidate on its record read in place (only the fields
    // the filter and the sort read), count the matches, keep the rows that can be on the page.
    let keep = s.offset.saturating_add(s.limit);
    let need = s
        .sort
        .iter()
        .fold(pred.as_ref().map_or(Need::default(), Pred::need), |n, f| {
            n.union(f.need())
        });
    let after = s.after.as_ref().map(|c| (c.keys.as_slice(), c.id));
    let new_matches = || Matches::new(&s.sort, keep, after);
    let mut acc = new_matches();
    match cands {
        None => {
            // Records that lack a string the filter requires cannot match: skip them
            // without reading them (see `prefilter`).
            let required = Prefilter::of(plan.residual());
            // Scanned on all cores for large directories; one accumulator per id range.
            let parts = r.fold_records(new_matches, |m, id, bytes| {
                if !required.may_match(bytes) {
                    return Ok(());
                }
                let mut v = RecordView::default();
                codec::view_into(id, bytes, need, &mut v)?;
                if pred.as_ref().is_none_or(|p| p.matches(&v)) {
                    m.add(&v);
                }
                Ok(())
            })?;
            for p in parts {
                acc.merge(p);
            }
        }
        Some(ids) => {
            for id in ids {
                r.with_record(id, |bytes| {
                    let mut v = RecordView::default();
                    codec::view_into(id, bytes, need, &mut v)?;
                    if pred.as_ref().is_none_or(|p| p.matches(&v)) {
                        acc.add(&v);
                    }
                    Ok(())
                })?;
            }
        }
    }
    let Matches {
        total,
        remaining,
        mut rows,
        ..
    } = acc;
    let cmp =
        |a: &(Vec<Key>, Uuid), b: &(Vec<Key>, Uuid)| cmp_rows(&s.sort, (&a.0, a.1), (&b.0, b.1));
    if keep < rows.len() {
        rows.select_nth_unstable_by(keep, cmp);
        rows.truncate(keep);
    }
    rows.sort_unstable_by(cmp);
    let page_ids: Vec<Uuid> = rows.iter().skip(s.offset).map(|(_, id)| *id).collect();
    let users = fetch(r, page_ids)?;
    let next = if remaining > keep {
        users.last().map(cursor_of)
    } else {
        None
    };
    Ok(page(users, total, next))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A page in id order from the role index (after the cursor's id, if any): (ids, total,
/// whether more rows follow).
fn role_ordered_page(r: &Reader, s: &Search, role: &str) -> Result<(Vec<Uuid>, usize, bool)> {
    let total = to_usize(r.role_count(role)?);
    let want = s.limit.saturating_add(1);
    let mut ids = Vec::with_capacity(want.min(1024));
    let mut skip = s.offset;
    let after = s.after.as_ref().map(|c| c.id);
    r.role_walk(role, after, s.offset.saturating_add(want), |id| {
        if skip > 0 {
            skip -= 1;
            return Ok(true);
        }
        ids.push(id);
        Ok(ids.len() < want)
    })?;
    let more = ids.len() > s.limit;
    ids.truncate(s.limit);
    Ok((ids, total, more))
}

/// A page in login-key order (after the cursor's key, if any): (ids, total, whether more
/// rows follow), or `None` when the page needs users without that login (they sort after
/// every key, or first with `missing_first`) and the general path must serve it.
fn login_ordered_page(
    r: &Reader,
    s: &Search,
    attr: LoginAttr,
    prefix: &str,
    desc: bool,
) -> Result<Option<(Vec<Uuid>, usize, bool)>> {
    let kind = attr.kind();
    let with_key = r.login_count(kind, prefix)?;
    // Without a filter every user matches, those without the attribute included (missing);
    // a prefix filter matches only users with a key.
    let (total, missing) = if s.filter.is_none() {
        let all = r.count()?;
        (all, all.saturating_sub(with_key))
    } else {
        (with_key, 0)
    };
    if missing > 0 && s.sort.first().is_some_and(|f| f.missing_first) {
        return Ok(None);
    }
    let after = match s.after.as_ref().map(|c| c.keys.first()) {
        None => None,
        Some(Some(Key::Str(k))) => Some(k.as_str()),
        // A cursor among the users without the attribute.
        Some(Some(Key::Missing)) => return Ok(None),
        Some(_) => return Err(Error::InvalidCursor("malformed sort key".into())),
    };
    let want = s.limit.saturating_add(1);
    let mut ids = Vec::with_capacity(want.min(1024));
    let mut skip = s.offset;
    r.login_walk(
        kind,
        prefix,
        after,
        desc,
        s.offset.saturating_add(want),
        |_, id| {
            if skip > 0 {
                skip -= 1;
                return Ok(true);
            }
            ids.push(id);
            Ok(ids.len() < want)
        },
    )?;
    if ids.len() < s.limit && missing > 0 {
        return Ok(None);
    }
    let more = ids.len() > s.limit || missing > 0;
    ids.truncate(s.limit);
    Ok(Some((ids, to_usize(total), more)))
}

/// The matches of a search, counted, and the rows that can be on its page: the first `keep`
/// in the search's order after the cursor (a bounded selection: rows that cannot make it are
/// neither kept nor, once the bound is known, allocated).
struct Matches<'s> {
    sort: &'s [SortField],
    keep: usize,
    after: Option<(&'s [Key], Uuid)>,
    /// Every match.
    total: usize,
    /// Matches after the cursor.
    remaining: usize,
    /// Candidates for the page, pruned to the first `keep` when they reach twice that (or
    /// 64, for small pages).
    rows: Vec<(Vec<Key>, Uuid)>,
    /// After a pruning, the last row kept: a row ordered after it cannot be on the page.
    bound: Option<(Vec<Key>, Uuid)>,
    /// The sort keys of the match being added (buffers reused from match to match).
    scratch: Vec<Key>,
}

impl<'s> Matches<'s> {
    fn new(sort: &'s [SortField], keep: usize, after: Option<(&'s [Key], Uuid)>) -> Self {
        Matches {
            sort,
            keep,
            after,
            total: 0,
            remaining: 0,
            rows: Vec::new(),
            bound: None,
            scratch: vec![Key::Missing; sort.len()],
        }
    }

    fn cmp(&self, a: (&[Key], Uuid), b: (&[Key], Uuid)) -> std::cmp::Ordering {
        cmp_rows(self.sort, a, b)
    }

    fn add<U: Fields + ?Sized>(&mut self, u: &U) {
        use std::cmp::Ordering;
        self.total += 1;
        for (f, k) in self.sort.iter().zip(self.scratch.iter_mut()) {
            f.key_into(u, k);
        }
        let row = (self.scratch.as_slice(), u.id());
        if let Some(at) = self.after
            && self.cmp(row, at) != Ordering::Greater
        {
            return;
        }
        self.remaining += 1;
        if self.keep == 0
            || self
                .bound
                .as_ref()
                .is_some_and(|b| self.cmp(row, (&b.0, b.1)) != Ordering::Less)
        {
            return;
        }
        self.rows.push((self.scratch.clone(), u.id()));
        if self.rows.len() >= self.keep.max(32).saturating_mul(2) {
            self.prune();
        }
    }

    /// Keeps the first `keep` rows and remembers the last of them as the bound.
    fn prune(&mut self) {
        let (sort, keep) = (self.sort, self.keep);
        if keep == 0 || self.rows.len() <= keep {
            return;
        }
        self.rows
            .select_nth_unstable_by(keep - 1, |a, b| cmp_rows(sort, (&a.0, a.1), (&b.0, b.1)));
        self.rows.truncate(keep);
        self.bound = self.rows.last().cloned();
    }

    fn merge(&mut self, o: Matches<'_>) {
        self.total += o.total;
        self.remaining += o.remaining;
        self.rows.extend(o.rows);
    }
}

fn tighter(a: Bound<(i64, Uuid)>, b: Bound<(i64, Uuid)>, lower: bool) -> Bound<(i64, Uuid)> {
    let key = |x: &Bound<(i64, Uuid)>| match x {
        Bound::Included(k) | Bound::Excluded(k) => Some(*k),
        Bound::Unbounded => None,
    };
    match (key(&a), key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) => {
            if x == y {
                // Same key: the exclusive bound is the tighter one.
                if matches!(a, Bound::Excluded(_)) {
                    a
                } else {
                    b
                }
            } else if (x > y) == lower {
                a
            } else {
                b
            }
        }
    }
}

impl Directory {
    /// Searches the directory: filter, order, page. Runs on one consistent snapshot.
    ///
    /// The planner reads an index when the filter allows (see [`Directory::explain`]) and
    /// scans every user otherwise; either way the result is exactly the users the filter
    /// matches ([`Filter::matches`]), in the requested order, with `total` counting all
    /// of them.
    ///
    /// # Errors
    /// [`Error::InvalidCursor`] for a cursor of another sort order; [`Error::Corrupt`] or
    /// [`Error::Storage`].
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser};
    /// use userdir::query::{Search, SortField};
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// # for n in 0..5 { dir.create(NewUser::with_username(format!("user{n}")).role("staff"))?; }
    /// let mut search = Search::filter(r#"roles eq "staff""#)?.sort(SortField::username()).limit(2);
    /// let mut seen = 0;
    /// loop {
    ///     let page = dir.search(&search)?;
    ///     seen += page.users.len();
    ///     match page.next_search() { Some(next) => search = next, None => break }
    /// }
    /// assert_eq!(seen, 5);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    pub fn search(&self, s: &Search) -> Result<Page> {
        self.read_raw(|r| run(r, s))
    }

    /// The plan [`Directory::search`] would use.
    ///
    /// # Errors
    /// None today; reserved for plans that consult statistics.
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory};
    /// use userdir::query::Search;
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// let plan = dir.explain(&Search::filter(r#"userName sw "ab" and name.familyName co "son""#)?)?;
    /// assert_eq!(plan.to_string(), r#"LoginKeyPrefix(userName sw "ab") + filter name.familyName co "son""#);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    pub fn explain(&self, s: &Search) -> Result<Plan> {
        Ok(plan(s))
    }
}

impl ReadTx<'_> {
    /// [`Directory::search`] on this transaction's snapshot.
    ///
    /// # Errors
    /// As [`Directory::search`].
    pub fn search(&self, s: &Search) -> Result<Page> {
        run(self.r, s)
    }
}

//! The outcomes the database's seat and admin functions answer in `o_outcome`, as enums.
//!
//! The SQL functions in `migrations/` answer a row whose `o_outcome` names what happened. The
//! components read it with [`SeatOutcome::parse`] or [`AdminOutcome::parse`] and match on the
//! enum, so a renamed outcome cannot silently fall into a catch-all: a string the enums do not
//! know is an internal error the component logs, and a test (`tests::every_outcome_the_sql_answers_is_known`)
//! reads every `migrations/*.sql` and fails on any outcome literal the enums do not know.

/// Declares an outcome enum with its wire strings, `as_str`, `parse` and `ALL`.
macro_rules! outcomes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every outcome, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The string the SQL functions answer.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The outcome named `text`; `None` for a string no function answers.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

outcomes! {
    /// What `le_acquire_attempt`, `le_acquire_seat`, `le_extend` (and `le_extend_undoable`),
    /// `le_extend_undo` and `le_release` answer.
    SeatOutcome {
        /// The attempt was counted against the rate limit and may go on to the seat decision.
        Counted = "counted",
        /// The attempt is over the license's rate limit.
        RateLimited = "rate_limited",
        /// A new session took a seat.
        Created = "created",
        /// The machine's live session was handed back.
        Existing = "existing",
        /// Every seat is held.
        NoSeats = "no_seats",
        /// A heartbeat extended the lease.
        Renewed = "renewed",
        /// A borrow extended the session; for a release, the session is borrowed and keeps it.
        Borrowed = "borrowed",
        /// The borrow asked for more than the license allows.
        BorrowTooLong = "borrow_too_long",
        /// The session ended now.
        Released = "released",
        /// The session had already ended (a repeated release).
        AlreadyEnded = "already_ended",
        /// No license has this key.
        UnknownKey = "unknown_key",
        /// The license is suspended.
        Suspended = "suspended",
        /// The license is revoked.
        Revoked = "revoked",
        /// The license has expired.
        Expired = "expired",
        /// No session with this id on the license.
        NotFound = "not_found",
        /// The session's lease ran out.
        SessionExpired = "session_expired",
        /// The license allows no borrowing.
        BorrowNotAllowed = "borrow_not_allowed",
        /// The product requires a signed-in user and none was given (or a license key alone
        /// was used on such a product's session).
        SignInRequired = "sign_in_required",
        /// The user holds as many live seats as the license allows one user.
        UserSeatLimit = "user_seat_limit",
        /// An extension whose token could not be signed was taken back (`le_extend_undo`).
        Undone = "undone",
        /// Something changed the session after the extension to take back, so it was left as
        /// it is (`le_extend_undo`).
        Superseded = "superseded",
    }
}

outcomes! {
    /// What the admin functions of `migrations/0002_admin.sql` and later answer.
    AdminOutcome {
        /// Done.
        Ok = "ok",
        /// A change was made.
        Changed = "changed",
        /// Nothing needed changing.
        Unchanged = "unchanged",
        /// A session was force-released.
        Released = "released",
        /// The session had already ended.
        AlreadyEnded = "already_ended",
        /// No such organization.
        OrganizationNotFound = "organization_not_found",
        /// No such product.
        ProductNotFound = "product_not_found",
        /// No such license.
        LicenseNotFound = "license_not_found",
        /// No such session.
        SessionNotFound = "session_not_found",
        /// No such organization API key.
        KeyNotFound = "key_not_found",
        /// The organization already has a product with this code.
        DuplicateProductCode = "duplicate_product_code",
        /// A revoked license cannot be reinstated.
        RevokedReinstate = "revoked_reinstate",
        /// A revoked license cannot be suspended.
        RevokedSuspend = "revoked_suspend",
        /// A revoked license cannot be changed.
        RevokedUpdate = "revoked_update",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string literal a statement assigning `o_outcome` can produce, by file. A literal
    /// ending in `_` is a prefix the function completes (`'revoked_' || p_action`).
    fn outcome_literals() -> Vec<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut found = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("migrations/ is readable")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        assert!(files.len() >= 5, "found the migrations: {files:?}");
        for path in files {
            let sql = std::fs::read_to_string(&path).expect("a readable migration");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // `o_outcome := <expression>;`: the expression runs to the statement's end.
            for (at, _) in sql.match_indices("o_outcome :=") {
                let statement = &sql[at..];
                let statement = &statement[..statement.find(';').expect("a statement ends")];
                for literal in statement.split('\'').skip(1).step_by(2) {
                    found.push((name.clone(), literal.to_owned()));
                }
            }
            // `SELECT 'x' AS o_outcome` and comparisons `o_outcome = 'x'`.
            for line in sql.lines() {
                if let Some(at) = line.find("o_outcome = '") {
                    let rest = &line[at + "o_outcome = '".len()..];
                    found.push((name.clone(), rest[..rest.find('\'').unwrap()].to_owned()));
                }
            }
        }
        found
    }

    #[test]
    fn every_outcome_the_sql_answers_is_known() {
        let known: Vec<&str> = SeatOutcome::ALL
            .iter()
            .map(|o| o.as_str())
            .chain(AdminOutcome::ALL.iter().map(|o| o.as_str()))
            .collect();
        let literals = outcome_literals();
        assert!(
            literals.len() > 40,
            "the scan found the outcomes: {literals:?}"
        );
        for (file, literal) in literals {
            let ok = if let Some(prefix) = literal.strip_suffix('_') {
                known.iter().any(|k| k.starts_with(&format!("{prefix}_")))
            } else {
                known.contains(&literal.as_str())
            };
            assert!(
                ok,
                "{file}: the outcome '{literal}' is in no enum of src/outcome.rs"
            );
        }
    }

    #[test]
    fn outcomes_round_trip_their_strings() {
        for o in SeatOutcome::ALL {
            assert_eq!(SeatOutcome::parse(o.as_str()), Some(*o));
        }
        for o in AdminOutcome::ALL {
            assert_eq!(AdminOutcome::parse(o.as_str()), Some(*o));
        }
        assert_eq!(SeatOutcome::parse("no_such_outcome"), None);
        assert_eq!(AdminOutcome::parse(""), None);
    }
}

//! What a failed Milvus call means, decided once: "already exists", "not found",
//! "worth retrying", or a real failure. Callers get [`Created`] and `Option` instead of
//! errors to inspect.
//!
//! Milvus 2.3+ fills `Status.code` from its `merr` table (`pkg/util/merr/errors.go`),
//! which names these cases by number; Milvus 2.2 fills only the legacy `error_code`,
//! often with a generic value and the case only in the reason text. Where only the
//! text tells, the match is made here, on Milvus's own reason (never on our messages),
//! only when `code` is 0 (2.2) or 65535 (2.3+ "unexpected"), with the versions and
//! wording it covers written next to it. Reasons grow prefixes across versions, so
//! every text match is "contains".
//!
//! Answers that need no handling here (seen on 2.2.16 and 2.3.5, read in 2.4–2.6
//! source): `OperateUserRole` and `OperatePrivilege` of a binding or grant that exists,
//! `CreatePartition` of an existing partition and `CreateAlias` to the collection the
//! alias already names all succeed.

use milvault_proto::milvus::common::ErrorCode;

use super::types::Created;
use crate::error::{Error, MilvusError, Result};

/// `merr` code for "unexpected" (any error that is not a `merr` error, 2.3+).
const MERR_UNEXPECTED: i32 = 65535;

/// `merr` codes that mean "not found": collection, partition, segment, index,
/// database, alias.
const MERR_NOT_FOUND: &[i32] = &[100, 200, 600, 700, 800, 1600];

/// `merr` codes that mean the alias cannot be created: it names another collection
/// (1602), or a collection has that name (1601).
const MERR_ALIAS_TAKEN: &[i32] = &[1601, 1602];

/// `merr` codes worth retrying: not ready, unavailable, too many requests, rate limit
/// (8 reports `retriable = false` before 2.6.17), resource insufficient, not fully
/// loaded, recovering, tsafe stalled, unexpected EOF, storage too many requests,
/// timeout.
const MERR_RETRY: &[i32] = &[1, 2, 4, 8, 12, 103, 106, 202, 505, 1002, 1003, 10001];

/// Legacy `error_code`s (2.2 fills only these) that mean "not found".
const LEGACY_NOT_FOUND: &[ErrorCode] = &[
    ErrorCode::CollectionNotExists,
    ErrorCode::IndexNotExist,
    ErrorCode::SegmentNotFound,
    ErrorCode::CollectionNameNotFound,
];

/// Legacy `error_code`s worth retrying: rate limit, not ready, coordinator activating.
const LEGACY_RETRY: &[ErrorCode] = &[
    ErrorCode::RateLimit,
    ErrorCode::NotReadyServe,
    ErrorCode::NotReadyCoordActivating,
];

fn is_code(e: &MilvusError, codes: &[i32]) -> bool {
    codes.contains(&e.code)
}

fn is_error_code(e: &MilvusError, codes: &[ErrorCode]) -> bool {
    codes.iter().any(|c| *c as i32 == e.error_code)
}

/// Whether only the reason text can tell what happened (2.2, or 2.3+ "unexpected").
fn text_only(e: &MilvusError) -> bool {
    e.code == 0 || e.code == MERR_UNEXPECTED
}

fn reason_has(e: &MilvusError, needles: &[&str]) -> bool {
    needles.iter().any(|n| e.reason.contains(n))
}

fn is_not_found(e: &MilvusError) -> bool {
    if is_code(e, MERR_NOT_FOUND) || is_error_code(e, LEGACY_NOT_FOUND) {
        return true;
    }
    text_only(e)
        && reason_has(
            e,
            &[
                // DescribeCollection of a missing collection, 2.2.16 ("can't find
                // collection default:x") and 2.3–2.6 with code 0 or 65535.
                "can't find collection",
                // GetPersistentSegmentInfo of a segment dropped mid-call, 2.2.16
                // (datacoord/services.go: "failed to get segment <id>").
                "failed to get segment ",
            ],
        )
}

fn is_already_exists(e: &MilvusError) -> bool {
    if is_code(e, MERR_ALIAS_TAKEN) {
        return true;
    }
    if !text_only(e) {
        return false;
    }
    match e.op {
        // 2.2.16: "the key[root-coord/credential/roles/r1] has existed";
        // 2.3–2.6: "role [name:\"r1\"] already exists"; both with CreateRoleFailure.
        "CreateRole" => {
            e.error_code == ErrorCode::CreateRoleFailure as i32
                && reason_has(e, &["already exists", "has existed"])
        }
        // 2.2.16–2.6: CreateCredentialFailure, "user already exists: u1".
        "CreateCredential" => {
            e.error_code == ErrorCode::CreateCredentialFailure as i32
                && reason_has(e, &["user already exists"])
        }
        // 2.2.16–2.6: UnexpectedError, "database already exist: db1".
        "CreateDatabase" => reason_has(e, &["database already exist"]),
        // 2.2.16 only (2.3+ answer 1601/1602): "alias exists and already aliased to
        // another collection", "cannot create alias, collection already exists with
        // same name".
        "CreateAlias" => reason_has(
            e,
            &[
                "already aliased to another collection",
                "cannot create alias, collection already exists",
            ],
        ),
        _ => false,
    }
}

/// Whether repeating the call may succeed (decided where the status is read, and
/// kept in [`MilvusError::retriable`]).
pub(super) fn is_retryable(code: i32, error_code: i32, retriable: bool, reason: &str) -> bool {
    let e = MilvusError {
        cluster: String::new(),
        op: "",
        grpc: tonic::Code::Ok,
        code,
        error_code,
        reason: reason.to_owned(),
        retriable,
    };
    retriable
        || is_code(&e, MERR_RETRY)
        || is_error_code(&e, LEGACY_RETRY)
        || (text_only(&e)
            && reason_has(
                &e,
                &[
                    // 2.2: "proxy not healthy".
                    "not healthy",
                    // 2.3.5 right after a restart: "session not found->datanode-1:
                    // node not found[node=1]".
                    "session not found",
                    // 2.2/2.3 import queue full: "import task queue max size is ...".
                    "import task queue max size",
                ],
            ))
}

/// Turns a create call's result into [`Created`]; other failures stay errors.
pub(crate) fn created<T>(r: Result<T>) -> Result<Created> {
    match r {
        Ok(_) => Ok(Created::New),
        Err(Error::Milvus(m)) if is_already_exists(&m) => Ok(Created::Existed),
        Err(e) => Err(e),
    }
}

/// Turns a read call's result into `Option`: `None` when Milvus says "not found".
pub(crate) fn found<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Milvus(m)) if is_not_found(&m) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(op: &'static str, code: i32, error_code: ErrorCode, reason: &str) -> Error {
        Error::Milvus(MilvusError {
            cluster: "c".into(),
            op,
            grpc: tonic::Code::Ok,
            code,
            error_code: error_code as i32,
            reason: reason.into(),
            retriable: false,
        })
    }

    #[test]
    fn codes_decide_not_found() {
        // 2.3.5 DescribeIndex without index, and 2.2.16 (IndexNotExist only).
        let r: Result<()> = Err(err("DescribeIndex", 700, ErrorCode::IndexNotExist, "x"));
        assert!(matches!(found(r), Ok(None)));
        let r: Result<()> = Err(err("DescribeIndex", 0, ErrorCode::IndexNotExist, "x"));
        assert!(matches!(found(r), Ok(None)));
        let r: Result<()> = Err(err(
            "DescribeAlias",
            1600,
            ErrorCode::UnexpectedError,
            "alias not found[database=default][alias=x]",
        ));
        assert!(matches!(found(r), Ok(None)));
        // 2.5.19+/2.6 DescribeCollection: CollectionNotExists with code 0.
        let r: Result<()> = Err(err(
            "DescribeCollection",
            0,
            ErrorCode::CollectionNotExists,
            "x",
        ));
        assert!(matches!(found(r), Ok(None)));
        let r: Result<()> = Err(err(
            "GetPersistentSegmentInfo",
            0,
            ErrorCode::UnexpectedError,
            "failed to get segment 42",
        ));
        assert!(matches!(found(r), Ok(None)));
        // A specific code other than "not found" is never overridden by text.
        let r: Result<()> = Err(err("Query", 101, ErrorCode::UnexpectedError, "not found"));
        assert!(found(r).is_err());
        let r: Result<()> = Err(err("Query", 65535, ErrorCode::UnexpectedError, "not found"));
        assert!(found(r).is_err(), "a vague text alone must not decide");
    }

    #[test]
    fn already_exists_needs_the_right_call_code_and_milvus_reason() {
        let r: Result<()> = Err(err(
            "CreateRole",
            65535,
            ErrorCode::CreateRoleFailure,
            "role [name:\"r1\"] already exists",
        ));
        assert_eq!(created(r).ok(), Some(Created::Existed));
        let r: Result<()> = Err(err(
            "CreateRole",
            0,
            ErrorCode::CreateRoleFailure,
            "fail to create role, error: the key[root-coord/credential/roles/r1] has existed",
        ));
        assert_eq!(created(r).ok(), Some(Created::Existed));
        let r: Result<()> = Err(err(
            "CreateRole",
            65535,
            ErrorCode::CreateRoleFailure,
            "permission denied",
        ));
        assert!(created(r).is_err());
        let r: Result<()> = Err(err("CreateAlias", 1602, ErrorCode::UnexpectedError, "?"));
        assert_eq!(created(r).ok(), Some(Created::Existed));
        let r: Result<()> = Err(err(
            "CreateDatabase",
            65535,
            ErrorCode::UnexpectedError,
            "database already exist: db1",
        ));
        assert_eq!(created(r).ok(), Some(Created::Existed));
        // The same words from another call mean nothing.
        let r: Result<()> = Err(err(
            "CreateCollection",
            65535,
            ErrorCode::UnexpectedError,
            "database already exist",
        ));
        assert!(created(r).is_err());
    }

    #[test]
    fn retryable_from_codes_flags_and_narrow_texts() {
        assert!(is_retryable(8, 49, false, "rate limit exceeded"));
        assert!(is_retryable(0, ErrorCode::RateLimit as i32, false, ""));
        assert!(is_retryable(
            65535,
            1,
            false,
            "session not found->datanode-1"
        ));
        assert!(is_retryable(0, 1, true, "anything"));
        assert!(!is_retryable(100, 4, false, "not healthy"));
        assert!(!is_retryable(65535, 1, false, "bad schema"));
    }
}

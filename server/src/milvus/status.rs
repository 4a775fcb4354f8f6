//! What a failed Milvus call means, decided once: "already exists", "not found", or
//! a real failure. Callers get [`Created`] and `Option` instead of errors to inspect.
//!
//! Milvus 2.3+ fills `Status.code` from its `merr` table, which names these cases by
//! number; Milvus 2.2 fills only the legacy `error_code`, often with a generic value
//! and the case in the reason text. Where only the text tells, the match is made here,
//! on Milvus's own reason (never on our messages), with the versions and wording it
//! covers written next to it.

use milvault_proto::milvus::common::ErrorCode;

use super::types::Created;
use crate::error::{Error, MilvusError, Result};

/// `merr` codes (Milvus 2.3+, `pkg/util/merr/errors.go`) that mean "not found".
const MERR_NOT_FOUND: &[i32] = &[
    100,  // ErrCollectionNotFound
    200,  // ErrPartitionNotFound
    600,  // ErrSegmentNotFound
    700,  // ErrIndexNotFound
    800,  // ErrDatabaseNotFound
    1600, // ErrAliasNotFound
];

/// `merr` codes that mean "already exists".
const MERR_EXISTS: &[i32] = &[
    1602, // ErrAliasAlreadyExist
];

/// Legacy `error_code`s (2.2) that mean "not found".
const LEGACY_NOT_FOUND: &[ErrorCode] = &[
    ErrorCode::CollectionNotExists,
    ErrorCode::IndexNotExist,
    ErrorCode::SegmentNotFound,
    ErrorCode::CollectionNameNotFound,
];

fn is_not_found(e: &MilvusError) -> bool {
    if MERR_NOT_FOUND.contains(&e.code) {
        return true;
    }
    if LEGACY_NOT_FOUND.iter().any(|c| *c as i32 == e.error_code) {
        return true;
    }
    // Milvus 2.2.16 DescribeIndex on a collection without index: error_code
    // UnexpectedError with reason "index doesn't exist, collectionID ..." (older 2.2
    // builds used IndexNotExist, handled above).
    let r = e.reason.to_ascii_lowercase();
    e.code == 0 && e.op == "DescribeIndex" && r.contains("index doesn't exist")
}

fn is_already_exists(e: &MilvusError) -> bool {
    if MERR_EXISTS.contains(&e.code) {
        return true;
    }
    // RBAC calls of 2.2.16 and 2.3.5 answer an existing role/binding/grant with the
    // call's generic failure code (CreateRoleFailure, OperateUserRoleFailure,
    // OperatePrivilegeFailure, CreateCredentialFailure) and the case only in the
    // reason: "role [name=...] already exists", "... already exist" (rootcoord
    // meta_table / RBAC catalog). CreateDatabase and CreateAlias of 2.2.16 answer
    // UnexpectedError with "database already exist: ..." / "alias ... already exists".
    let generic = [
        ErrorCode::UnexpectedError,
        ErrorCode::CreateRoleFailure,
        ErrorCode::OperateUserRoleFailure,
        ErrorCode::OperatePrivilegeFailure,
        ErrorCode::CreateCredentialFailure,
    ]
    .iter()
    .any(|c| *c as i32 == e.error_code);
    let r = e.reason.to_ascii_lowercase();
    generic && r.contains("already exist")
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
        let r: Result<()> = Err(err("DescribeIndex", 700, ErrorCode::IndexNotExist, "x"));
        assert!(matches!(found(r), Ok(None)));
        let r: Result<()> = Err(err("DescribeIndex", 0, ErrorCode::IndexNotExist, "x"));
        assert!(matches!(found(r), Ok(None)));
        let r: Result<()> = Err(err("DescribeAlias", 1600, ErrorCode::UnexpectedError, "x"));
        assert!(matches!(found(r), Ok(None)));
        let r: Result<()> = Err(err("Query", 65535, ErrorCode::UnexpectedError, "not found"));
        assert!(found(r).is_err(), "text alone must not decide");
    }

    #[test]
    fn already_exists_needs_the_generic_code_and_milvus_reason() {
        let r: Result<()> = Err(err(
            "CreateRole",
            65535,
            ErrorCode::CreateRoleFailure,
            "role [name=r1] already exists",
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
    }
}

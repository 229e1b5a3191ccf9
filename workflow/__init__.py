"""Every state change: check permission and state, change, record an audit event.
Views, CLI commands and (later) the import and the API call these functions; none
changes a record's state by itself. Functions flush but do not commit: the caller
owns the transaction, so a failure leaves nothing half-written.
"""

from workflow.accounts import (
    SignInOutcome,
    SignInResult,
    change_password,
    check_codes,
    confirm_contact_change,
    confirm_identity,
    register_icp,
    request_password_reset,
    resend_registration_codes,
    reset_password,
    reset_token_user,
    retry_message,
    sign_in,
    sign_out,
    update_own_profile,
)
from workflow.checks import AccessData, EntityData, WebsiteData, check_accesses, check_entity, check_website
from workflow.errors import NotFound, WorkflowError
from workflow.filings import (
    approval_blockers,
    approve,
    batch_approve,
    isp_return,
    isp_verify,
    reject,
    review_preapproval,
    save_filing_draft,
    submit_application,
)
from workflow.imports import import_filings, queue_import, run_import, run_import_jobs
from workflow.issuing import certificate_payload, issue_certificates
from workflow.lifecycle import (
    add_access,
    cancel_access,
    delete_revocation_request,
    discard_application,
    edit_revocation_request,
    end_filing,
    find_by_number,
    process_revocation_requests,
    proposal_of,
    propose_domains,
    propose_responsible,
    propose_website,
    propose_website_edit,
    request_cancellation,
    request_revocation,
    revocation_target,
    revoke_by_number,
)
from workflow.notices import NoticeData, delete_notice, remove_attachment, save_notice, set_published
from workflow.users import (
    UserData,
    create_user,
    generate_password,
    hash_password,
    reset_user_password,
    set_import_grant,
    set_user_status,
    update_user,
)

__all__ = [
    "AccessData", "EntityData", "NotFound", "NoticeData", "SignInOutcome", "SignInResult", "UserData",
    "WebsiteData", "WorkflowError", "add_access", "approval_blockers", "approve", "batch_approve",
    "cancel_access", "certificate_payload", "change_password", "check_accesses", "check_codes", "check_entity",
    "check_website", "confirm_contact_change", "confirm_identity", "create_user", "delete_notice",
    "delete_revocation_request", "discard_application", "edit_revocation_request", "end_filing",
    "find_by_number", "generate_password", "hash_password", "import_filings", "isp_return", "isp_verify",
    "issue_certificates", "process_revocation_requests", "proposal_of", "propose_domains",
    "propose_responsible", "propose_website", "propose_website_edit", "queue_import", "register_icp", "reject",
    "remove_attachment", "request_cancellation", "request_password_reset", "request_revocation",
    "resend_registration_codes", "reset_password", "reset_token_user", "reset_user_password", "retry_message",
    "review_preapproval", "revocation_target", "revoke_by_number", "run_import", "run_import_jobs",
    "save_filing_draft", "save_notice", "set_import_grant", "set_published", "set_user_status", "sign_in",
    "sign_out", "submit_application", "update_own_profile", "update_user",
]

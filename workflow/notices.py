"""Notices (SPEC §9, FAQ 38): MIIT (national) and bureaus (own province) write, publish, withdraw, delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from flask_babel import lazy_gettext as _l

import audit
import notices
import permissions
from extensions import db
from models import Notice, NoticeAttachment, NoticeCategory, Role, User, utcnow
from permissions import Action
from workflow.errors import NotFound, WorkflowError

MAX_TITLE = 200
MAX_BODY = 200_000
Upload = tuple[str, IO[bytes]]  # (file name as sent, stream)


@dataclass(frozen=True)
class NoticeData:
    category: str
    title: str
    body: str


def _checked(actor: User, notice: Notice | None) -> None:
    if notice is None and not permissions.can(actor, Action.NOTICE_MANAGE):
        raise WorkflowError(str(_l("You may not manage notices.")))
    if notice is not None and not permissions.may_manage_notice(actor, notice):
        raise NotFound()


def _record(action: str, notice: Notice, **changes: object) -> None:
    audit.record(action, object_type="notice", object_id=notice.id, province_code=notice.province_code,
                 changes={"title": notice.title, **changes})


def _attach(notice: Notice, uploads: Sequence[Upload]) -> list[str]:
    """Check every file first (nothing is stored if one is refused), then store them all."""
    checked = []
    for filename, stream in uploads:
        try:
            checked.append(notices.check_attachment(filename, stream))
        except ValueError as error:
            raise WorkflowError(str(error), "attachments") from error
    for item in checked:
        notice.attachments.append(NoticeAttachment(
            stored_name=notices.store(item), original_name=item.original_name,
            content_type=item.content_type, size=len(item.data), sha256=item.sha256))
    return [item.original_name for item in checked]


def save_notice(actor: User, notice: Notice | None, data: NoticeData, uploads: Sequence[Upload] = ()) -> Notice:
    """Create (notice None) or edit a notice; the body is sanitised; new attachments are added."""
    _checked(actor, notice)
    title, body = data.title.strip(), notices.sanitise_html(data.body or "")
    if data.category not in {c.value for c in NoticeCategory}:
        raise WorkflowError(str(_l("Choose a category.")), "category")
    if not title or len(title) > MAX_TITLE:
        raise WorkflowError(str(_l("The title is required (at most %(n)s characters).", n=MAX_TITLE)), "title")
    if len(body) > MAX_BODY:
        raise WorkflowError(str(_l("The text is too long.")), "body")
    created = notice is None
    if notice is None:
        notice = Notice(province_code=None if actor.role == Role.MIIT else actor.province_code,
                        created_by_id=actor.id)
        db.session.add(notice)
    notice.category, notice.title, notice.body = NoticeCategory(data.category), title, body
    added = _attach(notice, uploads)
    db.session.flush()
    _record("notice.create" if created else "notice.edit", notice, category=notice.category.value,
            attachments_added=added)
    return notice


def _attachment(actor: User, attachment_id: int) -> NoticeAttachment:
    attachment = db.session.get(NoticeAttachment, attachment_id)
    if attachment is None or not permissions.may_manage_notice(actor, attachment.notice):
        raise NotFound()
    return attachment


def remove_attachment(actor: User, attachment_id: int) -> Notice:
    attachment = _attachment(actor, attachment_id)
    notice = attachment.notice
    notices.remove_after_commit(attachment.stored_name)
    notice.attachments.remove(attachment)
    db.session.flush()
    _record("notice.attachment_removed", notice, attachment=attachment.original_name)
    return notice


def set_published(actor: User, notice: Notice, published: bool) -> None:
    """Publish (public from now on) or withdraw (404 to the public again)."""
    _checked(actor, notice)
    if notice.published == published:
        raise WorkflowError(str(_l("The notice is already published.") if published
                                else _l("The notice is not published.")))
    notice.published = published
    notice.published_at = utcnow() if published else None
    _record("notice.publish" if published else "notice.withdraw", notice)


def delete_notice(actor: User, notice: Notice) -> None:
    """The notice and its attachments' files (removed once the deletion is committed)."""
    _checked(actor, notice)
    _record("notice.delete", notice, attachments=[a.original_name for a in notice.attachments])
    for attachment in notice.attachments:
        notices.remove_after_commit(attachment.stored_name)
    db.session.delete(notice)
    db.session.flush()


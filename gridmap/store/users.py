"""Application users (role + area scope). Never commits: the caller owns the transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridmap.errors import ConflictError, InvalidInput, NotFound
from gridmap.security import hash_password
from gridmap.store.areas import record_audit
from gridmap.store.models import ROLES, AppUser, Area, Grid, Person

__all__ = ["add_user", "get_user", "revoke_tokens"]


def add_user(
    session: Session,
    name: str,
    role: str,
    area: str | None,
    password: str | None,
    *,
    actor: str = "cli",
    person_id: int | None = None,
) -> AppUser:
    """Create a user; the scope must be a known area code, a grid code (a grid manager kept to
    one grid) or None for the whole city. ``person_id`` links the account to a person of the
    roster: a volunteer's own care subjects are those whose carer is that person."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; one of {', '.join(ROLES)}", code="unknown-role")
    if not name or len(name) > 64:
        raise InvalidInput("user name must have 1 to 64 characters", code="bad-name")
    if area is not None and not _known_scope(session, area):
        raise InvalidInput(
            f"unknown area or grid code {area!r} for the user's scope", code="unknown-area"
        )
    if person_id is not None and session.get(Person, person_id) is None:
        raise InvalidInput(f"no person {person_id} in the roster", code="unknown-person")
    if session.scalar(select(AppUser.id).where(AppUser.name == name)) is not None:
        raise ConflictError(f"user {name!r} already exists", code="user-exists")
    user = AppUser(
        name=name,
        role=role,
        area_code=area,
        password_hash=hash_password(password) if password else None,
        person_id=person_id,
    )
    session.add(user)
    session.flush()
    record_audit(
        session,
        actor,
        "user.add",
        "app_user",
        name,
        after={"role": role, "area": area, "person": person_id},
    )
    return user


def _known_scope(session: Session, code: str) -> bool:
    if session.scalar(select(Area.id).where(Area.code == code)) is not None:
        return True
    return session.scalar(select(Grid.id).where(Grid.code == code).limit(1)) is not None


def get_user(session: Session, name: str) -> AppUser | None:
    return session.scalar(select(AppUser).where(AppUser.name == name))


def revoke_tokens(session: Session, name: str, *, actor: str = "cli") -> int:
    """Invalidate every token issued so far for ``name``; returns the new token version."""
    user = get_user(session, name)
    if user is None:
        raise NotFound(f"no user {name!r}", code="user-not-found")
    user.token_version += 1
    record_audit(session, actor, "user.revoke_tokens", "app_user", name)
    return user.token_version

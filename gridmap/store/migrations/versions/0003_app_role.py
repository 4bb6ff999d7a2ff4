"""least-privilege application role: the service runs as gridmap_app, which may append to the
audit trail but never update, delete or truncate it

Revision ID: 0003_app_role
Revises: 0002_dispatch
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0003_app_role"
down_revision = "0002_dispatch"
branch_labels = None
depends_on = None

# On a managed server the migrating user may lack CREATEROLE: then the role is skipped with a
# notice and the service keeps running as the login user (the audit trigger still holds).
UPGRADE = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
    CREATE ROLE gridmap_app NOLOGIN;
  END IF;
  EXECUTE format('GRANT gridmap_app TO %I', current_user);
  GRANT USAGE ON SCHEMA public TO gridmap_app;
  GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO gridmap_app;
  GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO gridmap_app;
  REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM gridmap_app;
  REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM gridmap_app;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO gridmap_app;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO gridmap_app;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'gridmap_app role not created (no CREATEROLE): %', SQLERRM;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("""
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmap_app') THEN
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM gridmap_app;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM gridmap_app;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM gridmap_app;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM gridmap_app;
    REVOKE USAGE ON SCHEMA public FROM gridmap_app;
  END IF;
END $$;
""")

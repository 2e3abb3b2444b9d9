"""tick health: when the engine last completed a tick, and since when its ticks fail

The engine lease's heartbeat beats while a tick fails (every commit renews it, and a failed tick's
desk is rebuilt under the same lease), so it cannot tell a trading engine from a failing one.
``tick_wall_ms`` is the wall time of the last tick that completed; ``error_since_ms`` the wall
time of the first failure of the current run of failures (cleared by the next good tick).

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("tick_wall_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("error_since_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("error_since_ms")
        batch.drop_column("tick_wall_ms")

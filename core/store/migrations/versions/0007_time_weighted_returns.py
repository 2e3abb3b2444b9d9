"""time-weighted returns per agent: a rebalance moves capital, not an agent's return

``return_index`` is what 1 USDT at the start had grown to at the agent's last capital transfer,
``return_base`` its equity right after that transfer (NULL: none yet). Agents of earlier sessions
start at 1.0 with no transfer recorded, so their return reads against their starting capital.

Revision ID: 0007
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("return_index", sa.Float(), nullable=False, server_default="1.0"))
        batch.add_column(sa.Column("return_base", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("return_base")
        batch.drop_column("return_index")

"""trailing stops: the trail a proposal asks for, the position keeps and the order rests with,
and the paper venue's trailing state

Revision ID: 0011
Revises: 0010
"""

from alembic import op
import sqlalchemy as sa

import core.exchanges.paper_store


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_DESK = (("proposals", ("trail_callback", "trail_activation")),
         ("positions", ("trail_callback", "trail_activation")),
         ("orders", ("callback_rate", "activation_price")))
_PAPER = ("callback_rate", "activation_price", "trail_extreme")


def upgrade() -> None:
    for table, columns in _DESK:
        with op.batch_alter_table(table) as batch:
            for name in columns:
                batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    with op.batch_alter_table("paper_orders") as batch:
        for name in _PAPER:
            batch.add_column(sa.Column(
                name, core.exchanges.paper_store.ExactDecimal(precision=38, scale=18),
                nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("paper_orders") as batch:
        for name in _PAPER:
            batch.drop_column(name)
    for table, columns in _DESK:
        with op.batch_alter_table(table) as batch:
            for name in columns:
                batch.drop_column(name)

"""llm audit: tables and columns for LLM call audit trail, cost and shadow baseline

``llm_calls`` stores every model call; ``proposals.llm_call_id`` and ``ceo_decisions.llm_call_id``
link a proposal and a reviewer's verdict to the call behind them; ``shadow_trades`` holds the
rule-only twins' hypothetical trades. SQLite cannot add a foreign key to an existing table, so those
two columns go through batch mode (the table is copied once).

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('llm_calls',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('tick_ms', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('model', sa.String(length=96), nullable=False),
    sa.Column('prompt_version', sa.String(length=32), nullable=False),
    sa.Column('system', sa.Text(), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('prompt_sha256', sa.String(length=64), nullable=False),
    sa.Column('raw_reply', sa.Text(), nullable=True),
    sa.Column('parsed', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('validation_errors', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_llm_calls_agent_id_agents')),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_llm_calls_session_id_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_calls'))
    )
    op.create_index(op.f('ix_llm_calls_prompt_sha256'), 'llm_calls', ['prompt_sha256'], unique=False)
    op.create_index('ix_llm_calls_session_agent', 'llm_calls', ['session_id', 'agent_id'], unique=False)
    op.create_index('ix_llm_calls_session_tick', 'llm_calls', ['session_id', 'tick_ms'], unique=False)
    op.create_table('shadow_trades',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('symbol', sa.String(length=24), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.Column('leverage', sa.Integer(), nullable=False),
    sa.Column('margin', sa.Float(), nullable=False),
    sa.Column('entry_price', sa.Float(), nullable=False),
    sa.Column('stop_price', sa.Float(), nullable=False),
    sa.Column('take_profit', sa.Float(), nullable=True),
    sa.Column('opened_ms', sa.BigInteger(), nullable=False),
    sa.Column('closed_ms', sa.BigInteger(), nullable=True),
    sa.Column('exit_price', sa.Float(), nullable=True),
    sa.Column('fees', sa.Float(), nullable=False),
    sa.Column('realized_pnl', sa.Float(), nullable=False),
    sa.Column('close_reason', sa.String(length=24), nullable=True),
    sa.Column('reasoning', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_shadow_trades_agent_id_agents')),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_shadow_trades_session_id_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_trades'))
    )
    op.create_index('ix_shadow_session_agent_status', 'shadow_trades', ['session_id', 'agent_id', 'status'], unique=False)
    for table in ('ceo_decisions', 'proposals'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('llm_call_id', sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                batch_op.f(f'fk_{table}_llm_call_id_llm_calls'), 'llm_calls', ['llm_call_id'], ['id'])


def downgrade() -> None:
    for table in ('proposals', 'ceo_decisions'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_llm_call_id_llm_calls'), type_='foreignkey')
            batch_op.drop_column('llm_call_id')
    op.drop_index('ix_shadow_session_agent_status', table_name='shadow_trades')
    op.drop_table('shadow_trades')
    op.drop_index('ix_llm_calls_session_tick', table_name='llm_calls')
    op.drop_index('ix_llm_calls_session_agent', table_name='llm_calls')
    op.drop_index(op.f('ix_llm_calls_prompt_sha256'), table_name='llm_calls')
    op.drop_table('llm_calls')

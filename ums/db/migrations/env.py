"""Alembic environment: migrations run on the connection UMS hands in."""

from alembic import context

from ums.db.models import in_model, metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("UMS migrations run through `ums init` (ums.db.migrate)")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=in_model,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()

/*!
A statement and its parameters, run on either backend's connection: what lets the statements
that read the same in both dialects (the reads of a record, the report's aggregates, a run's
row, the quota's rows) be written once as plain functions (`sql.rs`, `overview.rs`), while
each backend chooses the connection and the transaction they run in.

sqlx's own genericity over databases needs a bound per bound type in every caller; two
implementations of [`Conn`] for the two connection types keep the shared code free of them.
*/

use std::future::Future;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};

/// One bound value of a shared statement.
#[derive(Debug, Clone, Copy)]
pub(super) enum Param<'a> {
    Int(i64),
    Text(&'a str),
    MaybeInt(Option<i64>),
    MaybeText(Option<&'a str>),
}

/// A row type both backends can read (every `sqlx::FromRow` type of the store is one).
pub(super) trait Row:
    for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

/// A connection (or a transaction's) a shared statement runs on.
pub(super) trait Conn: Send {
    /// Every row of `sql` with `params` bound to `$1`, `$2`, ...
    fn rows<T: Row>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = sqlx::Result<Vec<T>>> + Send;

    /// Runs `sql` with `params`; returns the rows it changed.
    fn run(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = sqlx::Result<u64>> + Send;

    /// The one row `sql` returns.
    fn row<T: Row>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = sqlx::Result<T>> + Send {
        async move {
            self.rows(sql, params)
                .await?
                .into_iter()
                .next()
                .ok_or(sqlx::Error::RowNotFound)
        }
    }
}

/// `params` as a backend's arguments, in order.
fn arguments<'q, A>(params: &[Param<'q>]) -> sqlx::Result<A>
where
    A: sqlx::Arguments<'q> + Default,
    i64: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    &'q str: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    Option<i64>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    Option<&'q str>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
{
    let mut args = A::default();
    for p in params {
        match *p {
            Param::Int(v) => args.add(v),
            Param::Text(v) => args.add(v),
            Param::MaybeInt(v) => args.add(v),
            Param::MaybeText(v) => args.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

impl Conn for sqlx::SqliteConnection {
    async fn rows<T: Row>(&mut self, sql: &str, params: &[Param<'_>]) -> sqlx::Result<Vec<T>> {
        let args: SqliteArguments<'_> = arguments(params)?;
        sqlx::query_as_with(sql, args).fetch_all(self).await
    }

    async fn run(&mut self, sql: &str, params: &[Param<'_>]) -> sqlx::Result<u64> {
        let args: SqliteArguments<'_> = arguments(params)?;
        let done = sqlx::query_with(sql, args).execute(self).await?;
        Ok(done.rows_affected())
    }
}

impl Conn for sqlx::PgConnection {
    async fn rows<T: Row>(&mut self, sql: &str, params: &[Param<'_>]) -> sqlx::Result<Vec<T>> {
        let args: PgArguments = arguments(params)?;
        sqlx::query_as_with(sql, args).fetch_all(self).await
    }

    async fn run(&mut self, sql: &str, params: &[Param<'_>]) -> sqlx::Result<u64> {
        let args: PgArguments = arguments(params)?;
        let done = sqlx::query_with(sql, args).execute(self).await?;
        Ok(done.rows_affected())
    }
}

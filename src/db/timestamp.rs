use serde::{Serialize, Serializer};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use time::OffsetDateTime;

/// A UTC instant with whole-second precision.
///
/// PostgreSQL stores it as `TIMESTAMPTZ`; SQLite as `INTEGER` Unix seconds, so that comparisons
/// in SQL (`expires_at > $1`) are numeric and a statement reads the same on both engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(OffsetDateTime::now_utc().unix_timestamp())
    }

    pub fn from_unix(seconds: i64) -> Timestamp {
        Timestamp(seconds)
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds))
    }

    pub fn minus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_sub(seconds))
    }

    fn datetime(self) -> Result<OffsetDateTime, time::error::ComponentRange> {
        OffsetDateTime::from_unix_timestamp(self.0)
    }

    /// `2026-11-27T01:32:05Z`, for `<time datetime>` and machines.
    pub fn iso(self) -> String {
        self.datetime()
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }

    /// `2026-11-27 01:32 UTC`, for pages.
    pub fn display(self) -> String {
        match self.datetime() {
            Ok(t) => format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            ),
            Err(_) => self.0.to_string(),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display())
    }
}

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> IsNull {
        <i64 as Encode<'q, Sqlite>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <i64 as Decode<'r, Sqlite>>::decode(value).map(Timestamp)
    }
}

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Timestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> IsNull {
        match self.datetime() {
            Ok(t) => <OffsetDateTime as Encode<'_, Postgres>>::encode_by_ref(&t, buf),
            // Out of range only for absurd inputs; store the epoch rather than panic.
            Err(_) => <OffsetDateTime as Encode<'_, Postgres>>::encode_by_ref(
                &OffsetDateTime::UNIX_EPOCH,
                buf,
            ),
        }
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<'r, Postgres>>::decode(value)
            .map(|t| Timestamp(t.unix_timestamp()))
    }
}

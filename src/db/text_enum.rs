//! Enums stored as TEXT on both engines. A value the enum does not know is a decode error, never
//! a silent default: a row with a role of `superuser` must not read as an ordinary user.

/// Implements sqlx's `Type`, `Encode` and `Decode` for SQLite and PostgreSQL, and `Value`, for a
/// fieldless enum with `fn as_str(self) -> &'static str` and `fn parse(&str) -> Option<Self>`.
#[macro_export]
macro_rules! text_enum {
    ($ty:ty) => {
        impl sqlx::Type<sqlx::Sqlite> for $ty {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <&str as sqlx::Type<sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $ty {
            fn decode(
                value: sqlx::sqlite::SqliteValueRef<'r>,
            ) -> ::std::result::Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Sqlite>>::decode(value)?;
                <$ty>::parse(text).ok_or_else(|| {
                    format!("unknown {} `{}` in the database", stringify!($ty), text).into()
                })
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> ::std::result::Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                <$ty>::parse(text).ok_or_else(|| {
                    format!("unknown {} `{}` in the database", stringify!($ty), text).into()
                })
            }
        }

        impl From<$ty> for $crate::db::Value {
            fn from(v: $ty) -> Self {
                $crate::db::Value::Text(v.as_str().to_string())
            }
        }

        impl From<Option<$ty>> for $crate::db::Value {
            fn from(v: Option<$ty>) -> Self {
                $crate::db::Value::OptText(v.map(|v| v.as_str().to_string()))
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use tether::config;
use tether::crypto::PasswordHasherPool;
use tether::db::ScopedConnection;
use tether::db::{self, DbPool};
use tether::forms;
use tether::models::Role;
use tether::services::accounts::{self, NewAccount};

/// tether: a multi-account dashboard for Mastodon and Pixelfed.
///
/// Every command reads the same configuration: Rocket.toml and ROCKET_* environment variables.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    Add {
        username: String,
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
}

/// jemalloc rather than glibc's malloc: a dashboard request spent a fifth of its CPU in glibc's
/// malloc and free (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts (a C `const char *`): one arena per core of the
/// benchmark machine rather than four, and freed pages handed back after a second.
#[export_name = "_rjem_malloc_conf"]
pub static JEMALLOC_CONF: &[u8; 47] = b"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[rocket::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => match migrate().await {
            Ok(pool) => {
                pool_close(&pool).await;
                println!("migrations applied");
                Ok(())
            }
            Err(e) => Err(e),
        },
        Command::User {
            command:
                UserCommand::Add {
                    username,
                    email,
                    admin,
                },
        } => add_user(&username, &email, admin).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the database before Rocket starts, so an unreachable database is one clear line and a
/// non-zero exit; then serves, and closes the pool only after the server has stopped, so
/// requests still finishing in the shutdown grace period keep their database.
async fn serve() -> Result<(), String> {
    let figment = config::figment();
    let settings: config::Settings = figment
        .extract()
        .map_err(|e| format!("invalid configuration: {e}"))?;
    let pool = db::open(
        &db::config(&figment)?,
        Duration::from_secs(settings.database_wait),
    )
    .await?;
    let launched = db::manage(tether::rocket_from(figment), pool.clone())
        .launch()
        .await;
    pool.close().await;
    match launched {
        Ok(_) => Ok(()),
        // Rocket has already logged why (a failing fairing names itself and its reason).
        Err(e) => Err(match e.kind() {
            rocket::error::ErrorKind::FailedFairings(_) => "tether did not start".to_string(),
            _ => e.to_string(),
        }),
    }
}

/// Closes connections cleanly, so SQLite checkpoints and nothing is left half-written at exit.
async fn pool_close(pool: &DbPool) {
    pool.close().await;
}

async fn connect() -> Result<DbPool, String> {
    let figment = config::figment();
    let config: rocket_db_pools::Config = figment
        .focus("databases.tether")
        .join(("max_connections", 2))
        .join(("connect_timeout", 5))
        .extract()
        .map_err(|e| format!("invalid database configuration in `databases.tether`: {e}"))?;
    db::open(&config, Duration::ZERO).await
}

async fn migrate() -> Result<DbPool, String> {
    let pool = connect().await?;
    db::migrate(&pool)
        .await
        .map_err(|e| format!("migrations failed: {e}"))?;
    Ok(pool)
}

/// The first line of standard input; typed at a terminal, without echo.
fn read_password() -> Result<String, String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("Password: ");
        return rpassword::read_password().map_err(|e| format!("cannot read the password: {e}"));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn add_user(username: &str, email: &str, admin: bool) -> Result<(), String> {
    forms::check_username(username)?;
    forms::check_email(email)?;
    let password = read_password()?;
    let password = password.as_str();
    forms::check_password(password, username)?;

    let pool = migrate().await?;
    let scope = ScopedConnection::new(pool.clone());
    let account = NewAccount {
        username,
        email,
        password,
        role: Some(if admin { Role::Admin } else { Role::User }),
    };
    let created = accounts::create(
        &scope,
        &PasswordHasherPool::new(1),
        account,
        Default::default(),
    )
    .await
    .map_err(|e| e.to_string());
    drop(scope);
    pool_close(&pool).await;
    let user = match created? {
        Ok(user) => user,
        Err(errors) => {
            let problems: Vec<String> = errors.into_values().collect();
            return Err(problems.join(" "));
        }
    };
    println!("created {} `{}` (id {})", user.role, user.username, user.id);
    Ok(())
}

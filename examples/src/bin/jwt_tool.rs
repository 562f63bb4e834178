//! Development JWTs with `mcp-auth`, for the JWT cross-check of `cargo xtask interop`:
//!
//! - `jwt_tool mint --audience A --private-key-out F --public-key-out F [--subject S]`:
//!   generates an [`mcp_auth::RsaKeyPair`], writes both keys (PEM) and prints a token for
//!   audience `A` (subject `S`, default `dev-user`).
//! - `jwt_tool sign --private-key F --audience A [--subject S]`: prints a token signed with an
//!   existing key (the one replicas of `dice_server_auth` share through `--private-key-file`),
//!   e.g. one per user to check that sessions stay with their subject.
//! - `jwt_tool verify --public-key F --audience A <token>`: checks the token with
//!   [`mcp_auth::JwtVerifier`] (signature, expiry, audience); exit 0 and the caller's identity
//!   as JSON when it is accepted, exit 1 and the reason when it is not.
//!
//! Development and testing only, like FastMCP's `RSAKeyPair`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_auth::{JwtVerifier, RsaKeyPair};
use serde_json::json;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Mint and verify development RS256 JWTs with mcp-auth")]
struct Args {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a key pair, write it, and print a token.
    Mint {
        /// The token's `aud` claim.
        #[arg(long)]
        audience: String,
        /// Where to write the private key (PKCS#8 PEM).
        #[arg(long)]
        private_key_out: PathBuf,
        /// Where to write the public key (SPKI PEM).
        #[arg(long)]
        public_key_out: PathBuf,
        /// The token's `sub` claim.
        #[arg(long, default_value = mcp_auth::DEV_SUBJECT)]
        subject: String,
    },
    /// Print a token signed with an existing private key.
    Sign {
        /// The private key (PKCS#8 PEM).
        #[arg(long)]
        private_key: PathBuf,
        /// The token's `aud` claim.
        #[arg(long)]
        audience: String,
        /// The token's `sub` claim.
        #[arg(long, default_value = mcp_auth::DEV_SUBJECT)]
        subject: String,
    },
    /// Verify a token against a public key and an audience.
    Verify {
        /// The public key (PEM).
        #[arg(long)]
        public_key: PathBuf,
        /// The audience the token must carry.
        #[arg(long)]
        audience: String,
        /// The token.
        token: String,
    },
}

async fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Mint {
            audience,
            private_key_out,
            public_key_out,
            subject,
        } => {
            let key_pair = RsaKeyPair::generate()?;
            std::fs::write(&private_key_out, key_pair.private_key_pem())?;
            std::fs::write(&public_key_out, key_pair.public_key_pem())?;
            let token = key_pair.create_token().audience(audience).subject(subject);
            println!("{}", token.sign()?);
            Ok(true)
        }
        Command::Sign {
            private_key,
            audience,
            subject,
        } => {
            let pem = std::fs::read_to_string(&private_key)?;
            let key_pair = RsaKeyPair::from_private_key_pem(&pem)?;
            let token = key_pair.create_token().audience(audience).subject(subject);
            println!("{}", token.sign()?);
            Ok(true)
        }
        Command::Verify {
            public_key,
            audience,
            token,
        } => {
            let pem = std::fs::read_to_string(&public_key)?;
            let verifier = JwtVerifier::from_public_key_pem(&pem)?.audience(audience);
            match verifier.verify_token(&token).await {
                Ok(identity) => {
                    println!(
                        "{}",
                        json!({
                            "accepted": true,
                            "subject": identity.subject.as_deref(),
                            "client_id": identity.client_id.as_deref(),
                            "scopes": &*identity.scopes,
                            "expires_at": identity.expires_at,
                        })
                    );
                    Ok(true)
                }
                Err(error) => {
                    eprintln!("jwt_tool: rejected: {error}");
                    Ok(false)
                }
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args.command).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("jwt_tool: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

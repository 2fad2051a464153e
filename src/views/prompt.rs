//! Questions asked of a person at a terminal (the host layer asks through
//! the traits it defines; only this module talks to the terminal).

use crate::host::ssh::{self, PassphrasePrompt};
use std::io::IsTerminal;
use std::path::Path;

/// Asks on the terminal, and only when both stdin and stderr are one.
pub struct Terminal;

impl PassphrasePrompt for Terminal {
    fn ask(&self, path: &Path) -> Option<String> {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return None;
        }
        dialoguer::Password::new()
            .with_prompt(format!("Passphrase for {}", path.display()))
            .allow_empty_password(true)
            .interact()
            .ok()
    }
}

/// Lets the SSH layer ask for identity-file passphrases on the terminal.
pub fn install() {
    ssh::set_passphrase_prompt(Box::new(Terminal));
}

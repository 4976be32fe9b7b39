//! The interactive prompt of `sifa query` (when no query is given and stdin is a
//! terminal): statements end with `;`, history is kept in `~/.sifa_history`.

use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::format::{self, Format};
use crate::query::Answer;

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".sifa_history"))
}

const HELP: &str = "End a statement with ';'. Tables: reports, report_revisions, units, metrics, facts, yearly, \
     yearly_facts, periods (SHOW TABLES; SHOW COLUMNS FROM reports;). \\q quits.";

/// Reads statements until end of input or `\q`, printing each result of `execute` (a store's session,
/// or a live tier's endpoint).
pub async fn run(
    execute: impl AsyncFn(&str) -> anyhow::Result<Vec<Answer>>,
    format: Format,
    banner: &str,
) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = history_path();
    if let Some(h) = &history {
        // A missing history file is the normal first run.
        let _ = editor.load_history(h);
    }
    println!("{banner}\n{HELP}");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "sifa> " } else { "  ... " };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && (trimmed == "\\q" || trimmed == "quit" || trimmed == "exit") {
                    break;
                }
                if buffer.is_empty() && (trimmed == "\\?" || trimmed == "help") {
                    println!("{HELP}");
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if !trimmed.ends_with(';') {
                    continue;
                }
                let sql = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(sql.trim());
                match execute(&sql).await {
                    Ok(answers) => {
                        for a in answers {
                            match format::render_for_terminal(format, &a) {
                                Ok(text) => print!("{text}"),
                                Err(e) => eprintln!("error: {e}"),
                            }
                        }
                    }
                    Err(e) => eprintln!("error: {e:#}"),
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history
        && let Err(e) = editor.save_history(h)
    {
        tracing::warn!("cannot save the query history to {}: {e}", h.display());
    }
    Ok(())
}

//! Help text in the user's language.
//!
//! English help comes from the doc comments on the argument types. For Simplified Chinese, every
//! command's `about` is looked up as `help.cmd.PATH` and every argument's help as `help.arg.ID` in
//! the catalogue. A unit test checks that the catalogue covers the whole command tree.

use caasctl_core::i18n::tr;
use caasctl_core::Lang;
use clap::{Arg, ArgAction, Command};

/// Picks the language before the parser runs, so that `--help` and parse errors are localised:
/// `--lang` on the command line, then `CAASCTL_LANG`, then the locale.
pub fn lang_from_argv() -> Lang {
    let args: Vec<String> = std::env::args().collect();
    for (index, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix("--lang=") {
            return Lang::from_locale(value).unwrap_or(Lang::En);
        }
        if arg == "--lang" {
            if let Some(value) = args.get(index + 1) {
                return Lang::from_locale(value).unwrap_or(Lang::En);
            }
        }
    }
    std::env::var("CAASCTL_LANG").ok().and_then(|v| Lang::from_locale(&v)).unwrap_or_else(Lang::from_env)
}

/// Applies the language to the command tree, and adds the exit-code table to the root's help.
pub fn localize(command: Command, lang: Lang) -> Command {
    let exit_codes = tr(lang, "help.exit_codes", &[]);
    let command = command.after_help(exit_codes);
    if lang == Lang::En {
        return command;
    }
    localize_tree(command, lang, "")
}

/// Localises `command`, whose path below the root is `path` (`""` for the root, `.etcd.backup`
/// for `caasctl etcd backup`), and its subcommands.
fn localize_tree(mut command: Command, lang: Lang, path: &str) -> Command {
    let key = if path.is_empty() { "help.cmd.caasctl".to_owned() } else { format!("help.cmd{path}") };
    if let Some(text) = lookup(lang, &key) {
        command = command.about(text);
    }
    // clap's own -h and -V flags have English text built in, so in other languages they are
    // replaced by the same flags with translated help.
    // NOTE: clap's `help` subcommand keeps its English description; it is built after this point.
    command = command.disable_help_flag(true).arg(
        Arg::new("help").short('h').long("help").action(ArgAction::Help).help(tr(lang, "help.flag.help", &[])).help_heading(tr(lang, "help.heading.options", &[])),
    );
    if path.is_empty() {
        command = command.disable_version_flag(true).arg(
            Arg::new("version").short('V').long("version").action(ArgAction::Version).help(tr(lang, "help.flag.version", &[])).help_heading(tr(lang, "help.heading.options", &[])),
        );
    }
    command = command
        .help_template(tr(lang, "help.template", &[]))
        .subcommand_help_heading(tr(lang, "help.heading.commands", &[]))
        .next_help_heading(tr(lang, "help.heading.options", &[]));

    let ids: Vec<String> = command.get_arguments().map(|a| a.get_id().to_string()).collect();
    for id in ids {
        let arg_key = format!("help.arg.{id}");
        let heading = tr(lang, "help.heading.options", &[]);
        let endpoints_heading = tr(lang, "help.heading.endpoints", &[]);
        command = command.mut_arg(&id, |arg| {
            let arg = match lookup(lang, &arg_key) {
                Some(text) => arg.help(text),
                None => arg,
            };
            match arg.get_help_heading() {
                Some("Endpoints") => arg.help_heading(endpoints_heading),
                Some(_) => arg,
                None => arg.help_heading(heading),
            }
        });
    }

    let names: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_owned()).collect();
    for name in names {
        let child_path = format!("{path}.{name}");
        command = command.mut_subcommand(&name, |sub| localize_tree(sub, lang, &child_path));
    }
    command
}

fn lookup(lang: Lang, key: &str) -> Option<String> {
    // The catalogue API takes static keys; help keys are built at run time, so they are looked up
    // through the key list.
    let keys = caasctl_core::i18n::keys(lang);
    keys.into_iter().find(|k| *k == key).map(|k| caasctl_core::Message::new(k).render(lang))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::CommandFactory;

    fn walk(command: &Command, path: &str, missing: &mut Vec<String>) {
        let key = if path.is_empty() { "help.cmd.caasctl".to_owned() } else { format!("help.cmd{path}") };
        if lookup(Lang::ZhCn, &key).is_none() {
            missing.push(key);
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let key = format!("help.arg.{id}");
            if lookup(Lang::ZhCn, &key).is_none() && !missing.contains(&key) {
                missing.push(key);
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path}.{}", sub.get_name()), missing);
        }
    }

    #[test]
    fn chinese_help_covers_every_command_and_option() {
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "catalogue keys missing for help: {missing:#?}");
    }

    #[test]
    fn localized_tree_still_valid() {
        localize(Cli::command(), Lang::ZhCn).debug_assert();
    }
}

/// Returns one line in the user's language that names what is wrong with the command line, for
/// languages other than English; clap's own English message and usage follow it. `None` for
/// English and for `--help` and `--version`, which are not errors.
pub fn explain_parse_error(error: &clap::Error, lang: Lang) -> Option<String> {
    use clap::error::{ContextKind, ErrorKind};

    if lang == Lang::En || !error.use_stderr() {
        return None;
    }
    let context = |kind: ContextKind| error.get(kind).map(ToString::to_string).unwrap_or_default();
    let arg = context(ContextKind::InvalidArg);
    let line = match error.kind() {
        ErrorKind::UnknownArgument => tr(lang, "cli.parse.unknown_argument", &[("arg", &arg)]),
        ErrorKind::InvalidSubcommand => tr(lang, "cli.parse.unknown_command", &[("name", &context(ContextKind::InvalidSubcommand))]),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            tr(lang, "cli.parse.invalid_value", &[("arg", &arg), ("value", &context(ContextKind::InvalidValue))])
        }
        ErrorKind::MissingRequiredArgument => tr(lang, "cli.parse.missing_argument", &[("arg", &arg)]),
        ErrorKind::ArgumentConflict => tr(lang, "cli.parse.conflict", &[("arg", &arg), ("other", &context(ContextKind::PriorArg))]),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => tr(lang, "cli.parse.missing_command", &[]),
        _ => tr(lang, "cli.parse.other", &[]),
    };
    Some(line)
}

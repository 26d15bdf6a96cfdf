//! Man pages and shell completions, generated from the one clap definition.

use clap_complete::Shell;

/// Arguments of `gym completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn completions(a: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = super::command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "gym", &mut buf);
    super::out::print(&String::from_utf8_lossy(&buf))?;
    Ok(())
}

/// Every completion script as (file name under `completions/`, bytes).
pub fn completion_files() -> Vec<(String, Vec<u8>)> {
    let shells = [
        (Shell::Bash, "gym.bash"),
        (Shell::Zsh, "_gym"),
        (Shell::Fish, "gym.fish"),
        (Shell::PowerShell, "_gym.ps1"),
        (Shell::Elvish, "gym.elv"),
    ];
    shells
        .iter()
        .map(|(sh, name)| {
            let mut cmd = super::command();
            let mut buf = Vec::new();
            clap_complete::generate(*sh, &mut cmd, "gym", &mut buf);
            (name.to_string(), buf)
        })
        .collect()
}

/// One man page per command and subcommand, as (file name under `man/`, bytes).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cmd = super::command();
    cmd.build();
    walk(&cmd, "gym", &mut out);
    out
}

fn walk(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) {
    if cmd.is_hide_set() {
        return;
    }
    let page = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut buf)
        .expect("rendering to memory cannot fail");
    out.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        walk(sub, &format!("{name}-{}", sub.get_name()), out);
    }
}

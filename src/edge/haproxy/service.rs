//! What the host's HAProxy service loads: the `-f` arguments of its systemd unit's `ExecStart`, with the unit's
//! `Environment=` and `EnvironmentFile=` variables expanded. `check-config` compares them with `[haproxy]
//! check_command`, since a check of other files than the service loads passes a config the reload then refuses
//! (Debian's HAProxy 3.4 package loads `/etc/haproxy/conf.d` next to `haproxy.cfg`).

use std::collections::HashMap;

/// Where systemd looks for the unit, an administrator's copy first.
const UNITS: [&str; 2] = [
    "/etc/systemd/system/haproxy.service",
    "/lib/systemd/system/haproxy.service",
];

/// The files the host's haproxy.service loads, or `None` when there is no such unit or it names none.
pub fn loaded_by_service() -> Option<Vec<String>> {
    let unit = UNITS.iter().find_map(|path| std::fs::read_to_string(path).ok())?;
    let files = environment_files(&unit)
        .into_iter()
        .map(|path| (path.clone(), std::fs::read_to_string(&path).ok()))
        .collect::<Vec<_>>();
    let loaded = service_config_files(&unit, &files);
    (!loaded.is_empty()).then_some(loaded)
}

/// A warning when `check_command` does not check every file the service loads.
pub fn check_command_mismatch(check_command: &str, service: &[String]) -> Option<String> {
    let checked = check_command_files(check_command);
    let missing: Vec<&String> = service.iter().filter(|f| !checked.contains(f)).collect();
    if missing.is_empty() {
        return None;
    }
    let all: Vec<String> = service.iter().map(|f| format!("-f {f}")).collect();
    Some(format!(
        "the haproxy service loads {} (its systemd unit), but [haproxy] check_command does not check {}; set \
         check_command = \"haproxy -c -q {}\", so that the check before a reload sees what the reload loads",
        all.join(" "),
        missing.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
        all.join(" ")
    ))
}

/// The files (or directories) a check command names with `-f`.
pub fn check_command_files(check_command: &str) -> Vec<String> {
    config_files(check_command.split_whitespace().map(str::to_owned))
}

/// The `EnvironmentFile=` paths of a unit, without the `-` that makes one optional.
fn environment_files(unit: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|line| line.trim().strip_prefix("EnvironmentFile="))
        .map(|path| path.trim().trim_start_matches('-').to_owned())
        .collect()
}

/// The `-f` arguments of the unit's first `ExecStart=`, after its variables: `Environment=` first, then each
/// environment file in order (which override it, as systemd does). `files` pairs each path with its text, if readable.
fn service_config_files(unit: &str, files: &[(String, Option<String>)]) -> Vec<String> {
    let mut vars: HashMap<String, String> = HashMap::new();
    for line in unit.lines().filter_map(|line| line.trim().strip_prefix("Environment=")) {
        for assignment in words(line) {
            if let Some((key, value)) = assignment.split_once('=') {
                vars.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    for text in files.iter().filter_map(|(_, text)| text.as_deref()) {
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            if let Some((key, value)) = line.split_once('=') {
                vars.insert(
                    key.trim().to_owned(),
                    value.trim().trim_matches('"').trim_matches('\'').to_owned(),
                );
            }
        }
    }
    let Some(exec) = unit.lines().find_map(|line| line.trim().strip_prefix("ExecStart=")) else {
        return Vec::new();
    };
    let expanded = exec.split_whitespace().flat_map(|word| {
        let name = word
            .trim_start_matches('$')
            .trim_start_matches('{')
            .trim_end_matches('}');
        match word.starts_with('$') {
            true => vars
                .get(name)
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            false => vec![word.to_owned()],
        }
    });
    config_files(expanded)
}

/// The values of the `-f` options of a command line.
fn config_files(words: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut next_is_file = false;
    for word in words {
        if next_is_file {
            out.push(word);
            next_is_file = false;
        } else {
            next_is_file = word == "-f";
        }
    }
    out
}

/// The words of an `Environment=` line: double-quoted ones whole, the rest split at spaces.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push(quoted[..end].to_owned());
            rest = quoted.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
            rest = rest[end..].trim_start();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian bookworm's haproxy.service (2.6), as installed here.
    const BOOKWORM: &str = "[Service]\nEnvironmentFile=-/etc/default/haproxy\nEnvironmentFile=-/etc/sysconfig/haproxy\n\
        Environment=\"CONFIG=/etc/haproxy/haproxy.cfg\" \"PIDFILE=/run/haproxy.pid\" \"EXTRAOPTS=-S /run/haproxy-master.sock\"\n\
        ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS\n\
        ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS\n";

    /// Debian experimental's haproxy.service (3.4.7-1), from the test tree (scripts/lib/tools.sh): its lines that
    /// matter here.
    const EXPERIMENTAL_3_4: &str = "[Service]\nEnvironmentFile=-/etc/default/haproxy\n\
        EnvironmentFile=-/etc/sysconfig/haproxy\n\
        Environment=\"CONFIG=/etc/haproxy/haproxy.cfg\" \"PIDFILE=/run/haproxy.pid\" \"CFGDIR=/etc/haproxy/conf.d\" \
        \"EXTRAOPTS=-S /run/haproxy-master.sock\"\n\
        ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -f $CFGDIR -p $PIDFILE $EXTRAOPTS\n\
        ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -f $CFGDIR -c $EXTRAOPTS\n\
        ExecReload=/bin/kill -USR2 $MAINPID\n";

    #[test]
    fn the_service_loads_its_config_and_what_3_4_adds() {
        assert_eq!(
            environment_files(BOOKWORM),
            ["/etc/default/haproxy", "/etc/sysconfig/haproxy"]
        );
        assert_eq!(service_config_files(BOOKWORM, &[]), ["/etc/haproxy/haproxy.cfg"]);
        assert_eq!(
            service_config_files(EXPERIMENTAL_3_4, &[]),
            ["/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d"]
        );
        // /etc/default/haproxy may point CONFIG elsewhere; it overrides the unit's Environment=.
        let defaults = (
            "/etc/default/haproxy".to_owned(),
            Some("# local\nCONFIG=\"/srv/lb/haproxy.cfg\"\n".to_owned()),
        );
        assert_eq!(service_config_files(BOOKWORM, &[defaults]), ["/srv/lb/haproxy.cfg"]);
    }

    #[test]
    fn a_check_command_missing_a_loaded_file_is_named_with_the_command_to_set() {
        let service = vec!["/etc/haproxy/haproxy.cfg".to_owned(), "/etc/haproxy/conf.d".to_owned()];
        let warning = check_command_mismatch("haproxy -c -f /etc/haproxy/haproxy.cfg", &service).unwrap();
        assert!(warning.contains("does not check /etc/haproxy/conf.d"), "{warning}");
        assert!(
            warning.contains("check_command = \"haproxy -c -q -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d\""),
            "{warning}"
        );
        let full = "haproxy -c -q -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d";
        assert_eq!(check_command_mismatch(full, &service), None);
    }
}

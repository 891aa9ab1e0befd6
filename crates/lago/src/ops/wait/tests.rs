use std::cell::{Cell, RefCell};
use std::io::Write;

use super::*;

/// A clock that moves only when told: a sleep moves it by the time slept.
struct FakeClock {
    now: Cell<Instant>,
    sleeps: RefCell<Vec<Duration>>,
}

impl FakeClock {
    fn new() -> Self {
        Self { now: Cell::new(Instant::now()), sleeps: RefCell::new(Vec::new()) }
    }
    fn advance(&self, d: Duration) {
        self.now.set(self.now.get() + d);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.now.get()
    }
    fn sleep(&self, d: Duration) {
        self.sleeps.borrow_mut().push(d);
        self.advance(d);
    }
}

/// How a [`FakeGuest`] answers its `n`th command.
type Reply<'a> = Box<dyn Fn(usize, &str) -> CommandStatus + 'a>;

/// A guest whose commands answer from a script (by try), each taking `cost` of the clock.
struct FakeGuest<'a> {
    clock: &'a FakeClock,
    cost: Duration,
    lines: RefCell<Vec<String>>,
    reply: Reply<'a>,
}

impl<'a> FakeGuest<'a> {
    fn new(clock: &'a FakeClock, cost: Duration, reply: impl Fn(usize, &str) -> CommandStatus + 'a) -> Self {
        Self { clock, cost, lines: RefCell::new(Vec::new()), reply: Box::new(reply) }
    }
    fn tries(&self) -> usize {
        self.lines.borrow().len()
    }
}

impl Guest for FakeGuest<'_> {
    fn name(&self) -> &str {
        "vm01"
    }
    fn run(&self, line: &str, _connect_timeout: u64) -> Result<CommandStatus, EnvError> {
        let n = self.lines.borrow().len();
        self.lines.borrow_mut().push(line.to_owned());
        self.clock.advance(self.cost);
        Ok((self.reply)(n, line))
    }
}

fn st(code: i32, out: &str, err: &str) -> CommandStatus {
    CommandStatus { code, out: out.as_bytes().to_vec(), err: err.as_bytes().to_vec() }
}

const QUICK: Duration = Duration::from_millis(5);
const SLOW: Duration = Duration::from_secs(2);

#[test]
fn a_command_is_tried_until_it_succeeds_and_bounded_by_the_time_left() {
    let clock = FakeClock::new();
    let guest = FakeGuest::new(&clock, QUICK, |n, _| if n < 3 { st(1, "", "not yet\n") } else { st(0, "ready\n", "") });
    let done = command_in(&guest, "test -e /ready && cat /ready", Duration::from_secs(30), &clock).unwrap();
    assert_eq!(done.stdout(), "ready\n");
    assert_eq!(guest.tries(), 4);
    let first = &guest.lines.borrow()[0];
    assert_eq!(
        first,
        "if command -v timeout >/dev/null 2>&1; then exec timeout 30 sh -c 'test -e /ready && cat /ready'; else exec sh -c 'test -e /ready && cat /ready'; fi"
    );
}

#[test]
fn a_command_that_never_succeeds_times_out_with_its_last_exit_code_and_output() {
    let clock = FakeClock::new();
    let guest = FakeGuest::new(&clock, QUICK, |n, _| st(3, &format!("try {n}\n"), "curl: (7) Failed to connect\n"));
    let err = command_in(&guest, "curl -sf http://localhost/", Duration::from_secs(5), &clock).unwrap_err();
    let last = guest.tries() - 1;
    assert_eq!(
        err.to_string(),
        format!(
            "VM vm01: `curl -sf http://localhost/` did not succeed within 5 s; its last try exited with 3:\ntry {last}\ncurl: (7) Failed to connect"
        )
    );
    let silent = FakeGuest::new(&clock, QUICK, |_, _| st(1, "", ""));
    let err = command_in(&silent, "false", Duration::from_millis(500), &clock).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VM vm01: `false` did not succeed within 0.5 s; its last try exited with 1 and printed nothing"
    );
}

#[test]
fn checks_that_come_back_at_once_pause_doubling_up_to_a_bound_never_past_the_deadline() {
    let clock = FakeClock::new();
    let guest = FakeGuest::new(&clock, QUICK, |_, _| st(1, "", ""));
    command_in(&guest, "false", Duration::from_secs(10), &clock).unwrap_err();
    let sleeps = clock.sleeps.borrow().clone();
    // No busy loop: within 10 s, about 10 one-second pauses after the first doublings.
    assert!(guest.tries() < 25, "{} tries in 10 s", guest.tries());
    assert_eq!(&sleeps[..6], &[50, 100, 200, 400, 800, 1000].map(Duration::from_millis));
    assert!(sleeps.iter().all(|s| *s <= MAX_PAUSE));
    // The wait ends at its deadline, not a pause later.
    let slept: Duration = sleeps.iter().sum::<Duration>() + QUICK * guest.tries() as u32;
    assert_eq!(slept, Duration::from_secs(10));
}

#[test]
fn checks_that_take_time_are_tried_again_at_once() {
    let clock = FakeClock::new();
    let guest = FakeGuest::new(&clock, SLOW, |n, _| if n < 4 { st(1, "", "") } else { st(0, "", "") });
    command_in(&guest, "slow-check", Duration::from_secs(60), &clock).unwrap();
    assert_eq!(guest.tries(), 5);
    assert!(clock.sleeps.borrow().is_empty(), "{:?}", clock.sleeps.borrow());
}

#[test]
fn a_zero_timeout_tries_once() {
    let clock = FakeClock::new();
    let guest = FakeGuest::new(&clock, QUICK, |_, _| st(1, "", ""));
    command_in(&guest, "false", Duration::ZERO, &clock).unwrap_err();
    assert_eq!(guest.tries(), 1);
    // The command itself may run for a second (the guest's `timeout` takes whole seconds).
    assert!(guest.lines.borrow()[0].contains("exec timeout 1 sh -c false"));
}

const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2981 1 0000000000000000 100 0 0 10 0
   1: 0F02000A:0016 0202000A:C1F2 01 00000000:00000000 02:0009A8E2 00000000     0        0 3301 4 0000000000000000 20 4 29 10 -1
   2: 0100007F:1F90 0100007F:9C40 06 00000000:00000000 03:00000D9A 00000000     0        0 0 3 0000000000000000
";
const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3120 1 0000000000000000 100 0 0 10 0
";

#[test]
fn listening_ports_come_from_the_kernels_tables() {
    // 22 listens (v4), 80 (v6); 8080 is a connection in TIME_WAIT, not a listener.
    assert_eq!(listening(&format!("{TCP}{TCP6}")), vec![22, 80]);
    assert_eq!(listening(""), Vec::<u16>::new());
}

#[test]
fn a_port_wait_ends_when_the_port_listens_and_says_which_listened_when_it_did_not() {
    let clock = FakeClock::new();
    let guest =
        FakeGuest::new(&clock, QUICK, |n, _| if n < 2 { st(0, TCP, "") } else { st(0, &format!("{TCP}{TCP6}"), "") });
    port_in(&guest, 80, Duration::from_secs(30), &clock).unwrap();
    assert_eq!(guest.tries(), 3);
    assert_eq!(guest.lines.borrow()[0], LISTEN_TABLES);

    let guest = FakeGuest::new(&clock, QUICK, |_, _| st(0, TCP, ""));
    let err = port_in(&guest, 8080, Duration::from_secs(3), &clock).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VM vm01: nothing listened on TCP port 8080 within 3 s; last seen: connection refused: nothing listened on 8080 (listening: 22)"
    );
    assert!(guest.tries() < 10, "{} tries in 3 s", guest.tries());
}

#[test]
fn a_port_wait_shows_why_ssh_did_not_connect() {
    let clock = FakeClock::new();
    let guest = FakeGuest::new(&clock, QUICK, |_, _| {
        st(255, "", "ssh: connect to host 127.0.0.1 port 2222: Connection refused\n")
    });
    let err = port_in(&guest, 22, Duration::from_secs(1), &clock).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VM vm01: nothing listened on TCP port 22 within 1 s; last seen: SSH did not connect: ssh: connect to host 127.0.0.1 port 2222: Connection refused"
    );
}

#[test]
fn a_unit_wait_asks_the_service_manager_and_shows_the_last_state() {
    let clock = FakeClock::new();
    let guest = FakeGuest::new(&clock, QUICK, |n, _| {
        if n < 2 { st(3, "nginx is stopped\n", "") } else { st(0, "nginx is running\n", "") }
    });
    unit_in(&guest, "nginx", ServiceProvider::Sysvinit, Duration::from_secs(30), &clock).unwrap();
    assert_eq!(guest.lines.borrow()[0], "/sbin/service nginx status");
    assert_eq!(guest.tries(), 3);

    let guest = FakeGuest::new(&clock, QUICK, |_, _| {
        st(
            3,
            "● db.service - DB\n     Loaded: loaded (/lib/systemd/system/db.service)\n     Active: activating (start) since Mon 2026-12-07\n",
            "",
        )
    });
    let err = unit_in(&guest, "db", ServiceProvider::Systemd, Duration::from_secs(2), &clock).unwrap_err();
    assert_eq!(guest.lines.borrow()[0], "systemctl status --lines=0 db");
    assert_eq!(
        err.to_string(),
        "VM vm01: service db was not active within 2 s; last seen: inactive (Active: activating (start) since Mon 2026-12-07)"
    );

    let guest = FakeGuest::new(&clock, QUICK, |_, _| st(1, "", "service: no such service nope\n"));
    let err = unit_in(&guest, "nope", ServiceProvider::Sysvinit, Duration::from_secs(2), &clock).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VM vm01: service nope was not active within 2 s; last seen: missing (service: no such service nope)"
    );
    let rendered = crate::diagnose::render(&err);
    assert_eq!(rendered.kind, Some(crate::diagnose::Kind::WaitTimeout));
    assert!(!rendered.user);
    assert_eq!(
        rendered.hints,
        [
            "`lago shell vm01 -c '/sbin/service nope status'` shows its state; its log is in the VM (the journal, /var/log)"
        ]
    );
}

#[test]
fn a_file_wait_shows_what_ls_said_last() {
    let clock = FakeClock::new();
    let guest =
        FakeGuest::new(&clock, QUICK, |n, _| if n < 1 { st(1, "", "ls: x: No such file\n") } else { st(0, "", "") });
    file_in(&guest, "/run/ready flag", Duration::from_secs(30), &clock).unwrap();
    assert_eq!(guest.lines.borrow()[0], "ls -d '/run/ready flag'");

    let guest =
        FakeGuest::new(&clock, QUICK, |_, _| st(1, "", "ls: cannot access '/run/ready': No such file or directory\n"));
    let err = file_in(&guest, "/run/ready", Duration::from_secs(2), &clock).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VM vm01: /run/ready did not appear within 2 s; last seen: ls: cannot access '/run/ready': No such file or directory"
    );
    assert!(guest.tries() < 10, "{} tries in 2 s", guest.tries());
}

#[test]
fn a_console_wait_sees_lines_written_before_and_after_it_began() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("vm01.console.log");
    std::fs::write(&log, "old boot: login: ready\r\n").unwrap();
    let from = std::fs::metadata(&log).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"Linux version 6.1\r\nlago-tiny: up\r\n").unwrap();
    let re = console_regex("^lago-tiny: (up|down)").unwrap();
    // Printed before the wait: seen at once, without the older boot's lines.
    let mut reads = 0;
    assert_eq!(follow("vm01", &log, from, &re, Duration::from_secs(30), &mut reads).unwrap(), "lago-tiny: up");
    assert_eq!(reads, 1);
    let re = console_regex("login: ready").unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(b"Welcome\r\nvm01 login: re").unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // The prompt has no newline: the line being written is matched too.
        f.write_all(b"ady").unwrap();
    });
    let line = follow("vm01", &log, from, &re, Duration::from_secs(30), &mut reads).unwrap();
    writer.join().unwrap();
    assert_eq!(line, "vm01 login: ready");
    // Read when written, not on a timer: the first read, then one or two per write.
    assert!((2..=5).contains(&reads), "{reads} reads");
}

#[test]
fn a_console_wait_that_times_out_shows_the_last_lines_and_reads_only_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("vm01.console.log");
    let lines: String = (1..=15).map(|i| format!("line {i}\r\n")).collect();
    std::fs::write(&log, format!("{lines}partial")).unwrap();
    let re = console_regex("never").unwrap();
    let err = follow("vm01", &log, 0, &re, Duration::from_millis(700), &mut 0).unwrap_err();
    let text = err.to_string();
    let expected: Vec<String> = (7..=15).map(|i| format!("line {i}")).chain(["partial".into()]).collect();
    assert_eq!(
        text,
        format!(
            "VM vm01: nothing on its console matched /never/ within 0.7 s; its last lines:\n{}",
            expected.join("\n")
        )
    );
    // Nothing written meanwhile: read once, however long the wait (no timer reads it again).
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let mut reads = 0;
    let err = follow("vm01", &empty, 0, &re, Duration::from_millis(900), &mut reads).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VM vm01: nothing on its console matched /never/ within 0.9 s; it printed nothing since the VM started"
    );
    assert_eq!(reads, 1);
}

#[test]
fn console_wait_errors_name_the_regex_and_the_log() {
    let err = console_regex("up(").unwrap_err();
    assert_eq!(err.to_string(), "Bad regular expression \"up(\" for the console");
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("unclosed group"));
    let re = console_regex("x").unwrap();
    let err = follow("vm01", Path::new("/nonexistent/vm01.console.log"), 0, &re, Duration::ZERO, &mut 0).unwrap_err();
    assert_eq!(err.to_string(), "VM vm01 has no console log to follow (/nonexistent/vm01.console.log is not there)");
}

#[test]
fn durations_read_as_people_write_them() {
    assert_eq!(human(Duration::from_secs(120)), "120 s");
    assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
    assert_eq!(secs_up(Duration::from_millis(1500)), 2);
    assert_eq!(secs_up(Duration::ZERO), 1);
}

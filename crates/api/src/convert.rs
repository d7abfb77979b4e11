//! Wire ↔ ledger conversion. Text fields (odds, enums) are parsed here; a value that does not
//! parse is a 400 with a code that says which.

use crate::error::{ApiError, ErrorCode};
use crate::wire::*;
use paddock_ledger::{
    AccountId, AccountView, Actor, BetId, BetKind, BetStatus, BetView, Command, Currency, EachWayTerms, EventId,
    ExclusionKind, IdempotencyKey, LegRequest, LegResult, LimitKind, LimitWindow, MarketId, MarketRules, MarketView,
    Money, NewSelection, Odds, OddsPolicy, PlaceBet, ResultCode, SelectionId, SelectionResult, TimestampMs,
};

fn bad(what: &str, value: &str) -> ApiError {
    ApiError::new(ErrorCode::BadParameter, format!("{what}: {value:?} is not valid"))
}

/// Parses odds text: text in none of the documented forms is `bad_parameter` (400, it breaks
/// the field's pattern), a readable price outside the book's range is `odds_invalid` (422).
pub fn odds(text: &str) -> Result<Odds, ApiError> {
    Odds::parse(text).map_err(|e| {
        let code = match e {
            paddock_ledger::OddsError::Unreadable(_) => ErrorCode::BadParameter,
            paddock_ledger::OddsError::OutOfRange => ErrorCode::Ledger(ResultCode::OddsInvalid),
        };
        ApiError::new(code, e.to_string())
    })
}

/// Odds for the wire.
pub fn odds_body(o: Odds) -> OddsBody {
    OddsBody {
        num: o.numerator(),
        den: o.denominator(),
        decimal: o.to_decimal_string(2),
        fractional: o.to_fractional_string(),
        american: o.to_american_string(),
    }
}

fn currency(text: &str) -> Result<Currency, ApiError> {
    Currency::parse(text).ok_or_else(|| ApiError::ledger(ResultCode::CurrencyInvalid))
}

/// `Command::OpenAccount`.
pub fn open_account(r: &OpenAccountRequest, key: IdempotencyKey) -> Result<Command, ApiError> {
    Ok(Command::OpenAccount { account: AccountId(r.account_id), currency: currency(&r.currency)?, key })
}

/// `Command::Deposit` / `Command::Withdraw`.
pub fn transfer(account: u64, r: &AmountRequest, key: IdempotencyKey, deposit: bool) -> Command {
    let (account, amount) = (AccountId(account), Money(r.amount_minor));
    if deposit {
        Command::Deposit { account, amount, key }
    } else {
        Command::Withdraw { account, amount, key }
    }
}

/// `Command::SetLimit`.
pub fn limit(account: u64, r: &LimitRequest, key: IdempotencyKey) -> Result<Command, ApiError> {
    let kind = match r.kind.as_str() {
        "deposit" => LimitKind::Deposit,
        "loss" => LimitKind::Loss,
        other => return Err(bad("kind (deposit, loss)", other)),
    };
    let window = match r.window.as_str() {
        "day" => LimitWindow::Day,
        "week" => LimitWindow::Week,
        "month" => LimitWindow::Month,
        other => return Err(bad("window (day, week, month)", other)),
    };
    Ok(Command::SetLimit { account: AccountId(account), kind, window, amount: r.amount_minor.map(Money), key })
}

/// `Command::Exclude`.
pub fn exclusion(account: u64, r: &ExclusionRequest, key: IdempotencyKey) -> Result<Command, ApiError> {
    let kind = match r.kind.as_str() {
        "self_exclusion" => ExclusionKind::SelfExclusion,
        "time_out" => ExclusionKind::TimeOut,
        other => return Err(bad("kind (self_exclusion, time_out)", other)),
    };
    Ok(Command::Exclude { account: AccountId(account), kind, duration_days: r.duration_days, key })
}

/// `Command::CreateEvent`.
pub fn create_event(r: &CreateEventRequest, actor: Actor, key: IdempotencyKey) -> Command {
    Command::CreateEvent {
        event: EventId(r.event_id),
        name: r.name.clone(),
        sport: r.sport.clone(),
        competition: r.competition.clone(),
        starts_at: TimestampMs(r.starts_at_ms),
        actor,
        key,
    }
}

fn fraction(text: &str) -> Result<(u32, u32), ApiError> {
    let (a, b) = text.split_once('/').ok_or_else(|| bad("each_way.fraction", text))?;
    let a = a.trim().parse().map_err(|_| bad("each_way.fraction", text))?;
    let b = b.trim().parse().map_err(|_| bad("each_way.fraction", text))?;
    Ok((a, b))
}

/// `Command::CreateMarket`.
pub fn create_market(r: &CreateMarketRequest, actor: Actor, key: IdempotencyKey) -> Result<Command, ApiError> {
    let selections = r
        .selections
        .iter()
        .map(|s| {
            Ok(NewSelection { selection: SelectionId(s.selection_id), name: s.name.clone(), odds: odds(&s.odds)? })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let each_way = match &r.rules.each_way {
        None => None,
        Some(ew) => {
            let (fraction_num, fraction_den) = fraction(&ew.fraction)?;
            Some(EachWayTerms { fraction_num, fraction_den, places: ew.places })
        }
    };
    Ok(Command::CreateMarket {
        market: MarketId(r.market_id),
        event: EventId(r.event_id),
        name: r.name.clone(),
        currency: currency(&r.currency)?,
        selections,
        rules: MarketRules {
            stake_min: Money(r.rules.stake_min_minor),
            stake_max: Money(r.rules.stake_max_minor),
            payout_max: Money(r.rules.payout_max_minor),
            liability_max: Money(r.rules.liability_max_minor),
            bet_delay_ms: r.rules.bet_delay_ms,
            closes_at: r.rules.closes_at_ms.map(TimestampMs),
            each_way,
        },
        actor,
        key,
    })
}

fn leg_result(text: &str) -> Result<LegResult, ApiError> {
    Ok(match text {
        "win" => LegResult::Win,
        "lose" => LegResult::Lose,
        "void" => LegResult::Void,
        "half_win" => LegResult::HalfWin,
        "half_lose" => LegResult::HalfLose,
        other => {
            let spec = other.strip_prefix("dead_heat:").ok_or_else(|| bad("result", other))?;
            let (p, t) = fraction(spec).map_err(|_| bad("result", other))?;
            LegResult::DeadHeat { paid_places: p, tied: t }
        }
    })
}

/// Results for settle / resettle.
pub fn results(r: &SettleRequest) -> Result<Vec<SelectionResult>, ApiError> {
    r.results
        .iter()
        .map(|s| {
            Ok(SelectionResult {
                selection: SelectionId(s.selection_id),
                win: leg_result(&s.win)?,
                place: s.place.as_deref().map(leg_result).transpose()?,
            })
        })
        .collect()
}

/// `Command::PlaceBets`: each bet converted as `POST /v1/bets` converts one, with its own key.
/// A bet that cannot be converted refuses the whole batch (nothing is applied), its error
/// naming the bet's place (`bets[3]: ...`).
pub fn place_bets(r: &PlaceBetsRequest) -> Result<Command, ApiError> {
    if r.bets.is_empty() || r.bets.len() > paddock_ledger::BETS_PER_BATCH_MAX {
        return Err(ApiError::new(
            ErrorCode::BadParameter,
            format!("bets holds {} bets: send 1 to {}", r.bets.len(), paddock_ledger::BETS_PER_BATCH_MAX),
        ));
    }
    let bets = r
        .bets
        .iter()
        .enumerate()
        .map(|(i, item)| {
            bet_of(&item.bet, IdempotencyKey(item.idempotency_key.clone()))
                .map_err(|e| ApiError { message: format!("bets[{i}]: {}", e.message), ..e })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Command::PlaceBets(bets))
}

/// `Command::PlaceBet`.
pub fn place_bet(r: &PlaceBetRequest, key: IdempotencyKey) -> Result<Command, ApiError> {
    bet_of(r, key).map(Command::PlaceBet)
}

/// The ledger's bet for a placement request.
fn bet_of(r: &PlaceBetRequest, key: IdempotencyKey) -> Result<PlaceBet, ApiError> {
    let kind = match (r.bet_type.as_str(), r.k) {
        ("single", None) => BetKind::Single,
        ("accumulator", None) => BetKind::Accumulator,
        ("k_of_n", Some(k)) => BetKind::KOfN { k },
        ("trixie", None) => BetKind::Trixie,
        ("patent", None) => BetKind::Patent,
        ("yankee", None) => BetKind::Yankee,
        ("lucky15", None) => BetKind::Lucky15,
        ("k_of_n", None) => {
            return Err(ApiError::new(
                ErrorCode::RequestRefused,
                "a k_of_n bet needs k: the number of legs in each line",
            ))
        }
        ("single" | "accumulator" | "trixie" | "patent" | "yankee" | "lucky15", Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::RequestRefused,
                format!("k is only for k_of_n bets: leave it out of a {} bet", r.bet_type),
            ))
        }
        (other, _) => {
            return Err(bad("type (single, accumulator, k_of_n with k, trixie, patent, yankee, lucky15)", other))
        }
    };
    let odds_policy = match r.odds_policy.as_str() {
        "exact" => OddsPolicy::Exact,
        "higher" => OddsPolicy::Higher,
        "any" => OddsPolicy::Any,
        other => return Err(bad("odds_policy (exact, higher, any)", other)),
    };
    let legs = r
        .legs
        .iter()
        .map(|l| {
            Ok(LegRequest {
                market: MarketId(l.market_id),
                selection: SelectionId(l.selection_id),
                odds: odds(&l.odds)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(PlaceBet {
        account: AccountId(r.account_id),
        legs,
        kind,
        stake_per_line: Money(r.stake_per_line_minor),
        each_way: r.each_way,
        odds_policy,
        key,
    })
}

/// `Command::CashOut`.
pub fn cash_out(bet: u64, r: &CashOutRequest, key: IdempotencyKey) -> Command {
    Command::CashOut {
        account: AccountId(r.account_id),
        bet: BetId(bet),
        value: Money(r.value_minor),
        quoted_versions: r.quoted_versions.iter().map(|q| (SelectionId(q.selection_id), q.price_version)).collect(),
        key,
    }
}

/// An account for the wire.
pub fn account_body(v: &AccountView, limits: &paddock_ledger::AccountLimitsView) -> AccountBody {
    AccountBody {
        account_id: v.account.0,
        currency: v.currency.to_string(),
        balance_minor: v.balance.minor(),
        exposure_minor: v.exposure.minor(),
        debt_minor: v.debt.minor(),
        excluded_until_ms: v.excluded_until.map(|t| t.0),
        exclusion: limits.exclusion.map(|k| exclusion_str(k).to_string()),
        limits: limits
            .limits
            .iter()
            .map(|l| LimitBody {
                kind: limit_kind_str(l.kind).to_string(),
                window: limit_window_str(l.window).to_string(),
                amount_minor: l.amount.map(|m| m.minor()),
                pending: l.pending.map(|(amount, at)| PendingLimitBody {
                    amount_minor: amount.map(|m| m.minor()),
                    effective_at_ms: at.0,
                }),
            })
            .collect(),
    }
}

/// A bet type's wire name.
pub fn bet_type_name(kind: BetKind) -> String {
    match kind {
        BetKind::Single => "single".into(),
        BetKind::Accumulator => "accumulator".into(),
        BetKind::KOfN { k } => format!("k_of_n:{k}"),
        BetKind::Trixie => "trixie".into(),
        BetKind::Patent => "patent".into(),
        BetKind::Yankee => "yankee".into(),
        BetKind::Lucky15 => "lucky15".into(),
    }
}

/// A bet for the wire.
pub fn bet_body(v: &BetView) -> BetBody {
    BetBody {
        bet_id: v.bet.0,
        account_id: v.account.0,
        status: v.status.as_str().to_string(),
        rejection: match v.status {
            BetStatus::Rejected(code) => Some(code.as_str().to_string()),
            _ => None,
        },
        bet_type: bet_type_name(v.kind),
        each_way: v.each_way,
        legs: v
            .legs
            .iter()
            .map(|(m, s, o)| BetLegBody { market_id: m.0, selection_id: s.0, odds: odds_body(*o) })
            .collect(),
        stake_minor: v.stake.minor(),
        lines: v.lines,
        paid_minor: v.paid.minor(),
        placed_at_ms: v.placed_at.0,
    }
}

/// A market for the wire.
pub fn market_body(v: &MarketView) -> MarketBody {
    MarketBody {
        market_id: v.market.0,
        event_id: v.event.0,
        name: v.name.clone(),
        currency: v.currency.to_string(),
        status: v.status.as_str().to_string(),
        result_version: v.result_version,
        rules: MarketRulesBody {
            stake_min_minor: v.rules.stake_min.minor(),
            stake_max_minor: v.rules.stake_max.minor(),
            payout_max_minor: v.rules.payout_max.minor(),
            liability_max_minor: v.rules.liability_max.minor(),
            bet_delay_ms: v.rules.bet_delay_ms,
            closes_at_ms: v.rules.closes_at.map(|t| t.0),
            each_way: v.rules.each_way.as_ref().map(|ew| EachWayBody {
                fraction: format!("{}/{}", ew.fraction_num, ew.fraction_den),
                places: ew.places,
            }),
        },
        selections: v
            .selections
            .iter()
            .map(|s| SelectionBody {
                selection_id: s.selection.0,
                name: s.name.clone(),
                odds: odds_body(s.odds),
                price_version: s.price_version,
                withdrawn: s.withdrawn,
                liability_minor: s.liability.minor(),
                rule4_deduction_pence: s.rule4_deduction_pence,
                result: s.result.as_ref().map(|r| SelectionResultBody {
                    selection_id: r.selection.0,
                    win: leg_result_text(r.win),
                    place: r.place.map(leg_result_text),
                }),
            })
            .collect(),
    }
}

/// A leg result in the form settlement requests take: `win`, `dead_heat:1/2`, ...
pub fn leg_result_text(result: LegResult) -> String {
    match result {
        LegResult::Win => "win".into(),
        LegResult::Lose => "lose".into(),
        LegResult::Void => "void".into(),
        LegResult::HalfWin => "half_win".into(),
        LegResult::HalfLose => "half_lose".into(),
        LegResult::DeadHeat { paid_places, tied } => format!("dead_heat:{paid_places}/{tied}"),
    }
}

/// Hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bet_request_with_an_unknown_field_is_refused_by_the_decoder() {
        let json = r#"{"account_id":1,"type":"single","legs":[],"stake_per_line_minor":100,"stake_minr":5}"#;
        assert!(serde_json::from_str::<PlaceBetRequest>(json).is_err());
    }

    #[test]
    fn bet_types_and_results_parse_from_their_wire_names() {
        let json = r#"{"account_id":1,"type":"k_of_n","k":2,"legs":[{"market_id":1,"selection_id":2,"odds":"5/2"}],"stake_per_line_minor":100,"odds_policy":"any"}"#;
        let req: PlaceBetRequest = serde_json::from_str(json).unwrap();
        let Command::PlaceBet(p) = place_bet(&req, IdempotencyKey("k".into())).unwrap() else { panic!() };
        assert_eq!(p.kind, BetKind::KOfN { k: 2 });
        assert_eq!(p.legs[0].odds, Odds::new(7, 2).unwrap());
        assert_eq!(leg_result("dead_heat:1/2").unwrap(), LegResult::DeadHeat { paid_places: 1, tied: 2 });
        assert_eq!(odds("banana").unwrap_err().code, ErrorCode::BadParameter, "no form of odds");
        assert_eq!(odds("1/1000").unwrap_err().code, ErrorCode::Ledger(ResultCode::OddsInvalid), "1.001: too short");
    }
}

/// A peer address: `host:port`, the host an IP address or a DNS name, the port 1-65535.
pub fn peer_address(text: &str) -> Result<String, ApiError> {
    let refuse = || {
        ApiError::new(
            ErrorCode::BadParameter,
            format!("peer_addr must be host:port, such as 10.0.0.4:7101 or node-4.example.net:7101, not {text:?}"),
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(refuse)?;
    let port: u16 = port.parse().map_err(|_| refuse())?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let dns = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if port == 0 || !(dns || host.parse::<std::net::IpAddr>().is_ok()) {
        return Err(refuse());
    }
    Ok(text.to_string())
}

/// An event as clients see it.
pub fn event_body(v: &paddock_ledger::EventView) -> EventBody {
    EventBody {
        event_id: v.event.0,
        name: v.name.clone(),
        sport: v.sport.clone(),
        competition: v.competition.clone(),
        starts_at_ms: v.starts_at.0,
        market_ids: v.markets.iter().map(|m| m.0).collect(),
    }
}

/// The book's settings as clients see them.
pub fn book_config_body(c: &paddock_ledger::BookConfig) -> BookConfigBody {
    BookConfigBody {
        rounding: match c.rounding {
            paddock_ledger::RoundingRule::Down => "down",
            paddock_ledger::RoundingRule::HalfUp => "half_up",
        }
        .to_string(),
        cash_out_margin_bps: c.cash_out_margin_bps,
        limit_cooling_off_ms: c.limit_cooling_off_ms,
        idempotency_ttl_ms: c.idempotency_ttl_ms,
        clock_step_max_ms: c.clock_step_max_ms,
    }
}

/// `Command::SetConfig` (the ledger checks the ranges: `config_invalid`).
pub fn set_config(r: &BookConfigBody, actor: Actor, key: IdempotencyKey) -> Result<Command, ApiError> {
    let rounding = match r.rounding.as_str() {
        "down" => paddock_ledger::RoundingRule::Down,
        "half_up" => paddock_ledger::RoundingRule::HalfUp,
        other => return Err(bad("rounding (down, half_up)", other)),
    };
    let config = paddock_ledger::BookConfig {
        rounding,
        cash_out_margin_bps: r.cash_out_margin_bps,
        limit_cooling_off_ms: r.limit_cooling_off_ms,
        idempotency_ttl_ms: r.idempotency_ttl_ms,
        clock_step_max_ms: r.clock_step_max_ms,
    };
    Ok(Command::SetConfig { config, actor, key })
}

/// An incident opened by an operator: a `reported` incident.
pub fn open_incident(r: &OpenIncidentRequest, actor: Actor, key: IdempotencyKey) -> Command {
    Command::OpenIncident {
        kind: paddock_ledger::IncidentKind::Reported,
        node: r.node_id,
        cause: r.cause.clone(),
        actor,
        key,
    }
}

/// An incident record as clients see it.
pub fn incident_body(v: &paddock_ledger::IncidentView) -> IncidentBody {
    IncidentBody {
        incident_id: v.id.0,
        kind: v.kind.as_str().to_string(),
        node_id: v.node,
        opened_at_ms: v.opened_at.0,
        opened_by: v.opened_by.clone(),
        cause: v.cause.clone(),
        closed_at_ms: v.closed_at.map(|t| t.0),
        closed_by: v.closed_by.clone(),
        resolution: v.resolution.clone(),
    }
}

fn limit_kind_str(kind: LimitKind) -> &'static str {
    match kind {
        LimitKind::Deposit => "deposit",
        LimitKind::Loss => "loss",
    }
}

fn limit_window_str(window: LimitWindow) -> &'static str {
    match window {
        LimitWindow::Day => "day",
        LimitWindow::Week => "week",
        LimitWindow::Month => "month",
    }
}

fn exclusion_str(kind: ExclusionKind) -> &'static str {
    match kind {
        ExclusionKind::SelfExclusion => "self_exclusion",
        ExclusionKind::TimeOut => "time_out",
    }
}

/// An audit event as the API shows it: a flat object whose `type` names the kind of event, in
/// the API's own words (`market_id`, `*_minor`, `*_ms`, statuses and kinds as the other
/// answers spell them, key ids in hex) — never the ledger's Rust names. docs/api.md lists
/// every type and its fields.
pub fn audit_event_json(event: &paddock_ledger::audit::AuditEvent) -> serde_json::Value {
    use paddock_ledger::audit::AuditEvent as E;
    use serde_json::json;
    match event {
        E::EventCreated { event } => json!({ "type": "event_created", "event_id": event.0 }),
        E::MarketCreated { market } => json!({ "type": "market_created", "market_id": market.0 }),
        E::MarketStatusChanged { market, from, to, reason } => json!({
            "type": "market_status_changed", "market_id": market.0,
            "from": from.as_str(), "to": to.as_str(), "reason": reason
        }),
        E::SelectionWithdrawn { market, selection, deduction_pence } => json!({
            "type": "selection_withdrawn", "market_id": market.0,
            "selection_id": selection.0, "deduction_pence": deduction_pence
        }),
        E::MarketSettled { market, result_version, bets_settled, paid_net, reason } => json!({
            "type": "market_settled", "market_id": market.0, "result_version": result_version,
            "bets_settled": bets_settled, "paid_net_minor": paid_net.minor(), "reason": reason
        }),
        E::LimitChanged { account, kind, window, amount, effective_at } => json!({
            "type": "limit_changed", "account_id": account.0, "kind": limit_kind_str(*kind),
            "window": limit_window_str(*window), "amount_minor": amount.map(|m| m.minor()),
            "effective_at_ms": effective_at.0
        }),
        E::Excluded { account, kind, until } => json!({
            "type": "excluded", "account_id": account.0, "kind": exclusion_str(*kind), "until_ms": until.0
        }),
        E::StakeFactorChanged { account, factor_permille } => json!({
            "type": "stake_factor_changed", "account_id": account.0, "factor_permille": factor_permille
        }),
        E::ConfigChanged => json!({ "type": "config_changed" }),
        E::PrincipalCreated { principal, role, accounts } => json!({
            "type": "principal_created", "principal": principal, "role": role.as_str(),
            "account_ids": accounts.iter().map(|a| a.0).collect::<Vec<_>>()
        }),
        E::AccountBound { principal, account } => json!({
            "type": "account_bound", "principal": principal, "account_id": account.0
        }),
        E::KeyIssued { principal, key, expires_at } => json!({
            "type": "key_issued", "principal": principal, "key_id": key.to_string(),
            "expires_at_ms": expires_at.map(|t| t.0)
        }),
        E::KeyRevoked { principal, key } => json!({
            "type": "key_revoked", "principal": principal, "key_id": key.to_string()
        }),
        E::IncidentOpened { incident, kind, node } => json!({
            "type": "incident_opened", "incident_id": incident.0, "kind": kind.as_str(), "node_id": node
        }),
        E::IncidentClosed { incident } => json!({ "type": "incident_closed", "incident_id": incident.0 }),
        E::BetIdsReserved { from, to, reason } => json!({
            "type": "bet_ids_reserved", "from_bet_id": from.0, "to_bet_id": to.0, "reason": reason
        }),
        E::HistoryArchived { before, markets, bets, digest } => json!({
            "type": "history_archived", "before_ms": before.0, "markets": markets, "bets": bets,
            "digest": hex(digest)
        }),
    }
}

/// An audit record as the API shows it.
pub fn audit_body(r: &paddock_ledger::audit::AuditRecord) -> AuditRecordBody {
    AuditRecordBody {
        seq: r.seq,
        log_index: r.log_index,
        at_ms: r.at.0,
        actor: r.actor.0.clone(),
        event: audit_event_json(&r.event),
        prev_hash: hex(&r.prev_hash),
        hash: hex(&r.hash),
        record: hex(&r.to_bytes()),
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// What a verified audit export holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditVerified {
    /// Records checked.
    pub records: u64,
    /// The hash at the head of the chain, hex (zeros for an empty trail).
    pub head: String,
    /// The highest log index a record names.
    pub last_log_index: u64,
}

/// Checks an exported audit trail end to end: every record's binary form decodes and says what
/// its JSON fields say, the sequence starts at 0 with no gap, and every hash links to the one
/// before (recomputed, not trusted). The error names the first bad record.
pub fn verify_audit_export(records: &[AuditRecordBody]) -> Result<AuditVerified, String> {
    let mut decoded = Vec::with_capacity(records.len());
    for (i, body) in records.iter().enumerate() {
        let bytes = unhex(&body.record).ok_or_else(|| format!("record {i}: `record` is not hex"))?;
        let r = paddock_ledger::audit::AuditRecord::from_bytes(&bytes).map_err(|e| format!("record {i}: {e}"))?;
        let agrees = r.seq == body.seq
            && r.log_index == body.log_index
            && r.at.0 == body.at_ms
            && r.actor.0 == body.actor
            && audit_event_json(&r.event) == body.event
            && hex(&r.prev_hash) == body.prev_hash
            && hex(&r.hash) == body.hash;
        if !agrees {
            return Err(format!("record {i} (seq {}): its fields differ from its binary form", body.seq));
        }
        decoded.push(r);
    }
    paddock_ledger::audit::verify_records(&decoded).map_err(|i| {
        format!("record {i}: the hash chain is broken there (a record was changed, removed or reordered)")
    })?;
    Ok(AuditVerified {
        records: decoded.len() as u64,
        head: hex(&decoded.last().map_or([0; 32], |r| r.hash)),
        last_log_index: decoded.iter().map(|r| r.log_index).max().unwrap_or(0),
    })
}

#[cfg(test)]
mod peer_address_tests {
    #[test]
    fn a_peer_address_is_host_and_port() {
        for good in ["10.0.0.4:7101", "node-4.example.net:7101", "[::1]:7101", "localhost:1"] {
            assert!(super::peer_address(good).is_ok(), "{good}");
        }
        for bad in ["", "nohost", "host:0", "host:99999", ":7101", "a b:1", "-x:1", "h\u{e9}:1", "x..y:1"] {
            let err = super::peer_address(bad).unwrap_err();
            assert!(err.message.contains("host:port"), "{bad}");
        }
    }
}

#[cfg(test)]
mod audit_export_tests {
    use super::*;
    use paddock_ledger::{apply, ApplyCtx, State, TimestampMs};

    fn trail() -> Vec<AuditRecordBody> {
        let mut state = State::new();
        for i in 1..=3u64 {
            let request = CreateEventRequest {
                event_id: i,
                name: format!("Event {i}"),
                sport: "football".into(),
                competition: "League".into(),
                starts_at_ms: 1_900_000_000_000,
            };
            let command = create_event(&request, Actor(format!("op{i}")), IdempotencyKey(format!("k{i}")));
            apply(&mut state, &command, ApplyCtx { log_index: i, time: TimestampMs(1_800_000_000_000 + i) });
        }
        state.audit().records().iter().map(audit_body).collect()
    }

    #[test]
    fn an_untouched_export_verifies_and_names_its_head() {
        let trail = trail();
        assert_eq!(trail.len(), 3);
        let verified = verify_audit_export(&trail).unwrap();
        assert_eq!(verified.records, 3);
        assert_eq!(verified.head, trail[2].hash);
        assert_eq!(verified.last_log_index, 3);
        assert_eq!(
            trail[0].event,
            serde_json::json!({ "type": "event_created", "event_id": 1 }),
            "structured, not Debug text"
        );
    }

    #[test]
    fn a_changed_removed_or_reordered_record_is_found_and_named() {
        let mut changed = trail();
        changed[1].actor = "someone-else".into();
        assert!(verify_audit_export(&changed).unwrap_err().starts_with("record 1"));

        let mut removed = trail();
        removed.remove(1);
        assert!(verify_audit_export(&removed).unwrap_err().contains("record 1"));

        let mut reordered = trail();
        reordered.swap(0, 2);
        assert!(verify_audit_export(&reordered).is_err());

        // A forger who rewrites the binary form too still breaks the chain.
        let mut forged = trail();
        let mut record = paddock_ledger::audit::AuditRecord::from_bytes(&unhex(&forged[1].record).unwrap()).unwrap();
        record.actor = Actor("mallory".into());
        forged[1] = audit_body(&record);
        assert!(verify_audit_export(&forged).unwrap_err().contains("hash chain is broken"));
    }
}

#[cfg(test)]
mod audit_event_tests {
    use paddock_ledger::audit::AuditEvent as E;
    use paddock_ledger::*;

    /// One event of every kind.
    fn every_kind() -> Vec<E> {
        let (market, account, key) = (MarketId(2), AccountId(1001), auth::KeyId(0xff));
        vec![
            E::EventCreated { event: EventId(1) },
            E::MarketCreated { market },
            E::MarketStatusChanged {
                market,
                from: MarketStatus::Open,
                to: MarketStatus::Suspended,
                reason: "goal under review".into(),
            },
            E::SelectionWithdrawn { market, selection: SelectionId(201), deduction_pence: 25 },
            E::MarketSettled {
                market,
                result_version: 1,
                bets_settled: 3,
                paid_net: Money(-1500),
                reason: String::new(),
            },
            E::LimitChanged {
                account,
                kind: LimitKind::Deposit,
                window: LimitWindow::Week,
                amount: Some(Money(20_000)),
                effective_at: TimestampMs(5),
            },
            E::Excluded { account, kind: ExclusionKind::TimeOut, until: TimestampMs(9) },
            E::StakeFactorChanged { account, factor_permille: 250 },
            E::ConfigChanged,
            E::PrincipalCreated { principal: "ann".into(), role: Role::Bettor, accounts: vec![account] },
            E::AccountBound { principal: "ann".into(), account },
            E::KeyIssued { principal: "ann".into(), key, expires_at: None },
            E::KeyRevoked { principal: "ann".into(), key },
            E::IncidentOpened { incident: incident::IncidentId(1), kind: incident::IncidentKind::Reported, node: 3 },
            E::IncidentClosed { incident: incident::IncidentId(1) },
            E::BetIdsReserved {
                from: paddock_ledger::BetId(41),
                to: paddock_ledger::BetId(1_000_000_041),
                reason: "promoted from cluster paddock at index 900".into(),
            },
            E::HistoryArchived { before: TimestampMs(7), markets: 2, bets: 40, digest: [7; 32] },
        ]
    }

    /// The kind's place in `every_kind`: a match with no wildcard, so a new kind of event does
    /// not compile until it is placed here, and the test then fails until `every_kind` has it.
    fn place(event: &E) -> usize {
        match event {
            E::EventCreated { .. } => 0,
            E::MarketCreated { .. } => 1,
            E::MarketStatusChanged { .. } => 2,
            E::SelectionWithdrawn { .. } => 3,
            E::MarketSettled { .. } => 4,
            E::LimitChanged { .. } => 5,
            E::Excluded { .. } => 6,
            E::StakeFactorChanged { .. } => 7,
            E::ConfigChanged => 8,
            E::PrincipalCreated { .. } => 9,
            E::AccountBound { .. } => 10,
            E::KeyIssued { .. } => 11,
            E::KeyRevoked { .. } => 12,
            E::IncidentOpened { .. } => 13,
            E::IncidentClosed { .. } => 14,
            E::BetIdsReserved { .. } => 15,
            E::HistoryArchived { .. } => 16,
        }
    }

    #[test]
    fn every_audit_event_is_a_typed_object_in_the_apis_words_and_documented() {
        let guide = include_str!("../../../docs/api.md");
        let places: Vec<usize> = every_kind().iter().map(place).collect();
        assert_eq!(places, (0..=16).collect::<Vec<_>>(), "one event of every kind, in order");
        for event in every_kind() {
            let json = super::audit_event_json(&event);
            let kind = json["type"].as_str().unwrap_or_else(|| panic!("a type: {json}"));
            assert!(kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{kind}");
            assert!(guide.contains(&format!("| `{kind}` |")), "docs/api.md's audit events list {kind}");
            let text = json.to_string();
            for rust in ["Open", "Suspended", "Deposit", "Week", "TimeOut", "Bettor", "Reported"] {
                assert!(!text.contains(rust), "no Rust name in {text}");
            }
        }
        let key = super::audit_event_json(&E::KeyRevoked { principal: "ann".into(), key: auth::KeyId(0xff) });
        assert_eq!(key["key_id"], "00000000000000ff", "a key id as every answer writes it");
    }
}

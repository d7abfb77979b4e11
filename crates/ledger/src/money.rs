//! Money and odds: integers and exact rationals, never floats.
//!
//! `Money` is a signed count of minor units (pence, cents). `Odds` is the decimal price as a
//! reduced fraction, so 10/11 fractional is stored as 21/11 and pays exactly that, not the
//! 1.91 a screen shows. Payouts are computed as exact rationals (`Ratio`, with a big-integer
//! fallback for long accumulators) and rounded once, at the end, by the book's `RoundingRule`.

use num_bigint::BigUint;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of money in minor units of some currency. Arithmetic is checked: an overflow is
/// an error the caller must handle, never a wrap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(pub i64);

impl Money {
    /// No money.
    pub const ZERO: Money = Money(0);

    /// The amount in minor units.
    pub fn minor(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// `self * factor`, or `None` on overflow.
    pub fn checked_mul(self, factor: i64) -> Option<Money> {
        self.0.checked_mul(factor).map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// Smallest decimal price the book offers: 1.01 (a 1-in-100 return).
pub const ODDS_DECIMAL_MIN: (u64, u64) = (101, 100);
/// Largest decimal price the book offers: 1001.0 (1000/1), Betfair's ceiling.
pub const ODDS_DECIMAL_MAX: u64 = 1001;
/// Largest denominator after reduction; keeps products of many legs inside `u128` in practice.
pub const ODDS_DENOMINATOR_MAX: u32 = 10_000;

/// A decimal price as a reduced fraction `num / den` (stake included: 2/1 fractional is 3/1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Odds {
    num: u32,
    den: u32,
}

/// Why a price could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OddsError {
    /// The text is not a decimal, fractional or American price.
    #[error("cannot read {0:?} as decimal (2.5), fractional (3/2) or American (+150, -110) odds")]
    Unreadable(String),
    /// The price is outside 1.01 ..= 1001 or too finely divided.
    #[error("odds must lie between 1.01 and 1001 with a denominator of at most 10000")]
    OutOfRange,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Odds {
    /// The decimal price `num / den`, reduced; refuses prices the book does not offer.
    pub fn new(num: u64, den: u64) -> Result<Odds, OddsError> {
        if den == 0 {
            return Err(OddsError::OutOfRange);
        }
        let g = gcd(u128::from(num), u128::from(den)) as u64;
        let (num, den) = (num / g.max(1), den / g.max(1));
        let odds = Odds {
            num: u32::try_from(num).map_err(|_| OddsError::OutOfRange)?,
            den: u32::try_from(den).map_err(|_| OddsError::OutOfRange)?,
        };
        if odds.is_valid() {
            Ok(odds)
        } else {
            Err(OddsError::OutOfRange)
        }
    }

    /// Whether this value (perhaps deserialised from a client) is a price the book offers.
    pub fn is_valid(&self) -> bool {
        let (num, den) = (u64::from(self.num), u64::from(self.den));
        den != 0
            && self.den <= ODDS_DENOMINATOR_MAX
            && gcd(u128::from(num), u128::from(den)) == 1
            && num * ODDS_DECIMAL_MIN.1 >= den * ODDS_DECIMAL_MIN.0
            && num <= den * ODDS_DECIMAL_MAX
    }

    /// Numerator of the decimal price.
    pub fn numerator(&self) -> u32 {
        self.num
    }

    /// Denominator of the decimal price.
    pub fn denominator(&self) -> u32 {
        self.den
    }

    /// The price as a `Ratio`.
    pub fn ratio(&self) -> Ratio {
        Ratio::new(u128::from(self.num), u128::from(self.den))
    }

    /// Reads "2.375" (decimal), "5/2" (fractional, so 7/2 decimal), "evens", or "+250" / "-110"
    /// (American). Decimal text is taken exactly, digit for digit.
    pub fn parse(text: &str) -> Result<Odds, OddsError> {
        let t = text.trim();
        let unreadable = || OddsError::Unreadable(text.to_string());
        if t.eq_ignore_ascii_case("evens") || t.eq_ignore_ascii_case("evs") {
            return Odds::new(2, 1);
        }
        if let Some((a, b)) = t.split_once('/') {
            let a: u64 = a.trim().parse().map_err(|_| unreadable())?;
            let b: u64 = b.trim().parse().map_err(|_| unreadable())?;
            if b == 0 {
                return Err(OddsError::OutOfRange);
            }
            return Odds::new(a.checked_add(b).ok_or(OddsError::OutOfRange)?, b);
        }
        if let Some(rest) = t.strip_prefix('+') {
            let a: u64 = rest.parse().map_err(|_| unreadable())?;
            if a < 100 {
                return Err(OddsError::OutOfRange);
            }
            return Odds::new(a + 100, 100);
        }
        if let Some(rest) = t.strip_prefix('-') {
            let a: u64 = rest.parse().map_err(|_| unreadable())?;
            if a < 100 {
                return Err(OddsError::OutOfRange);
            }
            return Odds::new(a + 100, a);
        }
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() || frac.len() > 4 || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(unreadable());
        }
        let scale = 10u64.pow(frac.len() as u32);
        let int: u64 = int.parse().map_err(|_| unreadable())?;
        let frac_value: u64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| unreadable())? };
        let num = int.checked_mul(scale).and_then(|v| v.checked_add(frac_value)).ok_or(OddsError::OutOfRange)?;
        Odds::new(num, scale)
    }

    /// The decimal price to `places` decimals, rounded half-up, for display only.
    pub fn to_decimal_string(&self, places: u32) -> String {
        let scale = 10u128.pow(places);
        let scaled = (u128::from(self.num) * scale * 2 + u128::from(self.den)) / (u128::from(self.den) * 2);
        if places == 0 {
            return scaled.to_string();
        }
        format!("{}.{:0width$}", scaled / scale, scaled % scale, width = places as usize)
    }

    /// The fractional price, "5/2" (winnings over stake), for display.
    pub fn to_fractional_string(&self) -> String {
        format!("{}/{}", self.num - self.den, self.den)
    }

    /// The American price, "+250" or "-110", rounded to the nearest whole number, for display.
    pub fn to_american_string(&self) -> String {
        let (num, den) = (u128::from(self.num), u128::from(self.den));
        let win = num - den;
        if win >= den {
            format!("+{}", (win * 100 * 2 + den) / (den * 2))
        } else {
            format!("-{}", (den * 100 * 2 + win) / (win * 2))
        }
    }
}

impl fmt::Display for Odds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal_string(2))
    }
}

/// How an exact payout is turned into minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundingRule {
    /// Truncate toward zero: the UK bookmaker norm; the house keeps the fraction.
    #[default]
    Down,
    /// Round half up: Betfair and Pinnacle.
    HalfUp,
}

/// A non-negative rational with `u128` parts, always reduced. Used for prices and payout
/// factors; operations are checked and return `None` where the big-integer path must take over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratio {
    /// Numerator.
    pub num: u128,
    /// Denominator, never zero.
    pub den: u128,
}

impl Ratio {
    /// Zero.
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };
    /// One.
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// `num / den` reduced. Panics on a zero denominator: every caller builds it from validated
    /// parts, so a zero here is a bug.
    pub fn new(num: u128, den: u128) -> Ratio {
        assert!(den != 0, "ratio with zero denominator");
        let g = gcd(num, den).max(1);
        Ratio { num: num / g, den: den / g }
    }

    /// `self * other`, or `None` on overflow.
    pub fn checked_mul(self, other: Ratio) -> Option<Ratio> {
        // Cross-reduce first so that the products stay as small as they can.
        let g1 = gcd(self.num, other.den).max(1);
        let g2 = gcd(other.num, self.den).max(1);
        let num = (self.num / g1).checked_mul(other.num / g2)?;
        let den = (self.den / g2).checked_mul(other.den / g1)?;
        Some(Ratio::new(num, den))
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Ratio) -> Option<Ratio> {
        let g = gcd(self.den, other.den).max(1);
        let den = (self.den / g).checked_mul(other.den)?;
        let num = self.num.checked_mul(other.den / g)?.checked_add(other.num.checked_mul(self.den / g)?)?;
        Some(Ratio::new(num, den))
    }

    /// `self - other`, or `None` if negative or on overflow.
    pub fn checked_sub(self, other: Ratio) -> Option<Ratio> {
        let g = gcd(self.den, other.den).max(1);
        let den = (self.den / g).checked_mul(other.den)?;
        let num = self.num.checked_mul(other.den / g)?.checked_sub(other.num.checked_mul(self.den / g)?)?;
        Some(Ratio::new(num, den))
    }
}

/// An exact amount rounded to minor units, with what rounding left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rounded {
    /// Minor units actually paid.
    pub paid_minor: i64,
    /// Exact amount minus paid amount, in millionths of a minor unit (negative when rounding
    /// up paid more than the exact amount). Booked per currency so the fraction is accounted.
    pub remainder_micro: i64,
}

/// `unit_minor * factor` rounded by `rule`: a single's return, without allocating. `None` if
/// it overflows `u128` (the caller then takes [`line_sum_rounded`]'s big-integer path).
pub fn single_rounded(unit_minor: i64, factor: Ratio, rule: RoundingRule) -> Option<Rounded> {
    let unit = u128::try_from(unit_minor).ok()?;
    match Ratio::new(unit, 1).checked_mul(factor) {
        Some(total) => round_ratio(total, rule),
        None => line_sum_rounded(unit_minor, &[[factor]], rule),
    }
}

fn round_ratio(total: Ratio, rule: RoundingRule) -> Option<Rounded> {
    let (floor, rest) = (total.num / total.den, total.num % total.den);
    let round_up = rule == RoundingRule::HalfUp && rest.checked_mul(2)? >= total.den;
    let paid_minor = i64::try_from(floor + u128::from(round_up)).ok()?;
    let micro = i64::try_from(rest.checked_mul(1_000_000)? / total.den).ok()?;
    Some(Rounded { paid_minor, remainder_micro: if round_up { micro - 1_000_000 } else { micro } })
}

/// The exact sum over `lines` of `unit_minor * product(line)`, rounded once by `rule`.
/// Tries `u128` arithmetic first and falls back to big integers when a long accumulator of
/// finely divided prices overflows it. `None` only if the result does not fit in `i64`.
pub fn line_sum_rounded<L: AsRef<[Ratio]>>(unit_minor: i64, lines: &[L], rule: RoundingRule) -> Option<Rounded> {
    let unit = u128::try_from(unit_minor).ok()?;
    let fast = (|| {
        let mut total = Ratio::ZERO;
        for line in lines {
            let mut product = Ratio::new(unit, 1);
            for factor in line.as_ref() {
                product = product.checked_mul(*factor)?;
            }
            total = total.checked_add(product)?;
        }
        Some(total)
    })();
    if let Some(total) = fast {
        // The common case, in u128 without allocating: floor, remainder, then the rule.
        return round_ratio(total, rule);
    }
    // Slow path: exact big-integer sum of products.
    let (num, den) = {
        let mut num = BigUint::from(0u8);
        let mut den = BigUint::from(1u8);
        for line in lines {
            let mut ln = BigUint::from(unit);
            let mut ld = BigUint::from(1u8);
            for factor in line.as_ref() {
                ln *= factor.num;
                ld *= factor.den;
            }
            num = num * &ld + ln * &den;
            den *= ld;
        }
        (num, den)
    };
    let floor = &num / &den;
    let rest = &num - &floor * &den; // 0 <= rest < den
    let twice_rest = &rest * 2u8;
    let paid = match rule {
        RoundingRule::Down => floor.clone(),
        RoundingRule::HalfUp if twice_rest >= den => &floor + 1u8,
        RoundingRule::HalfUp => floor.clone(),
    };
    let paid_minor = i64::try_from(paid.clone()).ok()?;
    // remainder = exact - paid, in micro-units, truncated toward zero.
    let micro = (&rest * 1_000_000u32) / &den;
    let micro = i64::try_from(micro).ok()?;
    let remainder_micro = if paid > floor { micro - 1_000_000 } else { micro };
    Some(Rounded { paid_minor, remainder_micro })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_accumulator_of_finely_divided_prices_takes_the_big_integer_path_and_pays_exactly() {
        // 20 factors of 1001/1000 (a Rule 4-reduced or each-way place price can be that
        // fine): the u128 product overflows (1000^20 > 2^128), the big-integer path computes
        // 100 × (1001/1000)^20 = 102.019... exactly and rounds it down once.
        let leg = Ratio::new(1001, 1000);
        let lines = vec![vec![leg; 20]];
        let r = line_sum_rounded(100, &lines, RoundingRule::Down).unwrap();
        assert_eq!(r.paid_minor, 102);
        assert!((0..1_000_000).contains(&r.remainder_micro));
        // The same amount split so that u128 suffices agrees with the big-integer answer.
        let short = vec![vec![leg; 2]];
        assert_eq!(line_sum_rounded(1_000_000, &short, RoundingRule::Down).unwrap().paid_minor, 1_002_001);
    }

    #[test]
    fn half_up_rounds_a_half_up_and_books_what_it_gave_away() {
        // 3 at 3/2 = 4.5: down pays 4 and keeps half a unit; half-up pays 5 and gives half away.
        let lines = vec![vec![Ratio::new(3, 2)]];
        assert_eq!(
            line_sum_rounded(3, &lines, RoundingRule::Down),
            Some(Rounded { paid_minor: 4, remainder_micro: 500_000 })
        );
        assert_eq!(
            line_sum_rounded(3, &lines, RoundingRule::HalfUp),
            Some(Rounded { paid_minor: 5, remainder_micro: -500_000 })
        );
    }
}

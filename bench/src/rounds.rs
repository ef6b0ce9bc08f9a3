//! Two sides measured in alternating rounds, judged on the median of the rounds' ratios.
//!
//! On a shared two-core machine either side's rate swings by 15 % or more from one measurement
//! to the next (pgbench's single-row inserts ran anywhere from 4,200 to 7,300/s within minutes
//! on 12-01), which moved a single ratio more than most changes do. So each comparison is
//! measured in [`ROUNDS`] rounds, ours first in the first round and theirs first in the next,
//! alternately, so that a drift favours neither; the verdict takes the median of the rounds'
//! ratios.

/// Rounds of each comparison.
pub const ROUNDS: usize = 3;

/// Measures `ours` and `theirs` [`ROUNDS`] times each, alternating which goes first; returns
/// their results in the order measured.
pub async fn alternate<A, B>(
    mut ours: impl AsyncFnMut() -> anyhow::Result<A>,
    mut theirs: impl AsyncFnMut() -> anyhow::Result<B>,
) -> anyhow::Result<(Vec<A>, Vec<B>)> {
    let (mut our_results, mut their_results) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            our_results.push(ours().await?);
            their_results.push(theirs().await?);
        } else {
            their_results.push(theirs().await?);
            our_results.push(ours().await?);
        }
    }
    Ok((our_results, their_results))
}

/// The median of `ratios` (the upper one of an even count; 0 for none).
pub fn median(ratios: &[f64]) -> f64 {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Ratios as a table shows them: `0.78, 0.74, 0.85`.
pub fn listed(ratios: &[f64]) -> String {
    let listed: Vec<String> = ratios.iter().map(|ratio| format!("{ratio:.2}")).collect();
    listed.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_ratio() {
        assert_eq!(median(&[0.9, 0.7, 0.8]), 0.8);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(listed(&[0.784, 0.7]), "0.78, 0.70");
    }

    #[tokio::test]
    async fn rounds_alternate_which_side_goes_first() {
        let order = std::cell::RefCell::new(Vec::new());
        let (ours, theirs) = alternate(
            async || {
                order.borrow_mut().push("ours");
                Ok(1)
            },
            async || {
                order.borrow_mut().push("theirs");
                Ok(2)
            },
        )
        .await
        .unwrap();
        assert_eq!(ours, [1; ROUNDS]);
        assert_eq!(theirs, [2; ROUNDS]);
        assert_eq!(
            order.into_inner(),
            ["ours", "theirs", "theirs", "ours", "ours", "theirs"]
        );
    }
}

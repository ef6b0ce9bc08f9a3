-- Referral rewards and weekly summaries (SPEC §2, §7).

-- The referral reward ledger: one row per rewarded referral (a referred user has one
-- referrer), written by the inline projection in the transaction of the referrer's
-- `ReferralRewarded` event. A second reward of one referral fails on this key.
CREATE TABLE referral_rewards (
    referred_user UUID PRIMARY KEY,
    referrer      UUID NOT NULL,
    workspaces    UUID[] NOT NULL,
    rewarded_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX referral_rewards_referrer_idx ON referral_rewards (referrer);

-- The job-dispatch projection's note of each referred user's first workspace (written with
-- its checkpoint): the first `ItemCreated` in one of these workspaces enqueues the referral
-- reward, and no other item costs more than one indexed look-up per batch.
CREATE TABLE referral_watch (
    referred_user UUID PRIMARY KEY,
    referrer      UUID NOT NULL,
    workspace_id  UUID NOT NULL UNIQUE
);

-- Weekly summaries sent: one row per workspace and ISO week, written by the inline projection
-- in the transaction of the `WeeklySummarySent` event.
CREATE TABLE weekly_summaries (
    workspace_id UUID NOT NULL,
    week         TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    sent_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, week)
);

-- The weeks whose summary jobs were enqueued (by whichever node got there first, in the
-- transaction that enqueued them): a week is scheduled once however many nodes run the
-- schedule, and the newest row tells a restarted node which weeks it missed.
CREATE TABLE weekly_summary_weeks (
    week_start   DATE PRIMARY KEY,
    week         TEXT NOT NULL,
    workspaces   BIGINT NOT NULL,
    scheduled_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

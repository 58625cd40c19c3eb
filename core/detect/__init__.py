"""From inventory to findings: the rules, the on-prem match, readiness outcomes for plans, findings reports."""

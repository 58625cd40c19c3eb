"""Reading the tenant: partitioned paged fetch, decoding to tables, snapshots, on-prem data (CSV and WinRM)."""

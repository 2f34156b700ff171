"""main_service: one per cluster; takes jobs, keeps standby, routes work to nodes."""

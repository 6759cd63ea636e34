"""Analyses requested over HTTP (the Argo Rollouts web provider): sessions, caching, ledger."""

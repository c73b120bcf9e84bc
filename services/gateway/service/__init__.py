"""Use cases of the gateway, one module per area; routers call these, these call repositories."""

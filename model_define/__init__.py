from .registry import InputSpec, create_model, get_entry, list_models, register_model  # noqa: F401

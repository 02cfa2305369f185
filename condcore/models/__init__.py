from condcore.models.condnet import CondNet, CondNetConfig, ForwardTrace

__all__ = ["CondNet", "CondNetConfig", "ForwardTrace"]

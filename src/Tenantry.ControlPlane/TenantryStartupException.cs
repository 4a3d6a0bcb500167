namespace Tenantry.ControlPlane;

/// <summary>What kept the control plane from starting; the host maps each to its own exit code.</summary>
public enum StartupProblem
{
    /// <summary>A setting has a value that cannot work.</summary>
    Setting,

    /// <summary>Another host holds the data directory.</summary>
    DataDirectoryInUse,

    /// <summary>A listening port is taken or needs privileges.</summary>
    Port,

    /// <summary>The control-plane store (<c>Tenantry:Store</c>) does not answer.</summary>
    Store,

    /// <summary>The data directory cannot be created or written.</summary>
    DataDirectory,
}

/// <summary>
/// A start-up failure the operator can fix, with a one-line message that names the setting
/// (<c>Tenantry:Store: cannot reach PostgreSQL at db:5432 (Connection refused)</c>).
/// </summary>
public sealed class TenantryStartupException : Exception
{
    public TenantryStartupException()
    {
    }

    public TenantryStartupException(string message)
        : base(message)
    {
    }

    public TenantryStartupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public TenantryStartupException(StartupProblem problem, string message, Exception? innerException = null)
        : base(message, innerException) => Problem = problem;

    public StartupProblem Problem { get; }
}
